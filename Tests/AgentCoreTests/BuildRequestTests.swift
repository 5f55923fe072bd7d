import Testing
@testable import AgentCore
import Images

/// `agent build`'s pure parts: `--output` specs and cache keys.
@Suite struct BuildRequestTests {
    @Test func outputSpecsAreParsedAsBuildxNamesThem() throws {
        #expect(try BuildRequest.parseOutput("type=oci,dest=out.tar") == .oci(dest: "out.tar"))
        #expect(try BuildRequest.parseOutput("type=docker,dest=d.tar") == .docker(dest: "d.tar"))
        #expect(try BuildRequest.parseOutput("type=local,dest=rootfs") == .local(dest: "rootfs"))
        #expect(try BuildRequest.parseOutput("type=image,name=localhost/a:1,push=true") == .image(name: "localhost/a:1", push: true))
        #expect(try BuildRequest.parseOutput("type=registry,name=r/a:1") == .image(name: "r/a:1", push: true))
        #expect(try BuildRequest.parseOutput("dest=x") == .local(dest: "x"))
    }

    @Test(arguments: ["type=oci", "type=tar,dest=x", "type=image", "type=docker,dest="])
    func badOutputSpecsAreBadInput(_ spec: String) {
        #expect(throws: BuildError.self) { try BuildRequest.parseOutput(spec) }
        do { _ = try BuildRequest.parseOutput(spec) } catch { #expect(error.code == .badInput && error.message.contains(spec)) }
    }

    @Test func cacheKeysChainTheParentAndSeparateEveryField() {
        func key(_ parent: Digest?, _ fields: [String]) -> Digest {
            var k = BuildCacheKey(parent: parent, kind: "RUN")
            for f in fields { k.add(f) }
            return k.finish()
        }
        let base = BuildCacheKey.base("sha256:" + String(repeating: "a", count: 64), platform: "linux/amd64")
        #expect(key(base, ["ab", "c"]) != key(base, ["a", "bc"]))
        #expect(key(base, ["x"]) == key(base, ["x"]))
        #expect(key(base, ["x"]) != key(nil, ["x"]))
        let other = BuildCacheKey.base("sha256:" + String(repeating: "b", count: 64), platform: "linux/amd64")
        #expect(key(base, ["x"]) != key(other, ["x"]))
    }
}
