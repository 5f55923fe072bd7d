import Testing
@testable import Images

@Test(arguments: [
    ("alpine", "docker.io/library/alpine:latest"),
    ("alpine:3.20", "docker.io/library/alpine:3.20"),
    ("user/tool", "docker.io/user/tool:latest"),
    ("index.docker.io/library/busybox:1", "docker.io/library/busybox:1"),
    ("127.0.0.1:5000/busybox:1", "127.0.0.1:5000/busybox:1"),
    ("localhost/a/b", "localhost/a/b:latest"),
    ("ghcr.io/org/team/tool:v1.2_x", "ghcr.io/org/team/tool:v1.2_x"),
])
func registryReferencesNormaliseAsDockerDoes(input: String, expected: String) throws {
    #expect(try ImageReference.parse(input).description == expected)
}

@Test func digestReferenceHasNoDefaultTag() throws {
    let hex = String(repeating: "ab", count: 32)
    let r = try ImageReference.parse("127.0.0.1:5000/x@sha256:" + hex)
    #expect(r.tag == nil)
    #expect(r.digest?.hex == hex)
    #expect(r.manifestReference == "sha256:" + hex)
    #expect(r.isLoopback)
    #expect(r.hostName == "127.0.0.1")
}

@Test(arguments: ["", "Alpine", "a//b", "a:", "a@sha256:xyz", "-a", "a:-x", "a/b_"])
func malformedReferencesAreRefused(input: String) {
    #expect(throws: ImageReferenceError.self) { try ImageReference.parse(input) }
}

@Test func localSourcesKeepTheirPaths() throws {
    #expect(try ImageSource.parse("oci:/srv/layout:v1") == .ociLayout(path: "/srv/layout", tag: "v1"))
    #expect(try ImageSource.parse("oci:./my:dir/layout") == .ociLayout(path: "./my:dir/layout", tag: nil))
    #expect(try ImageSource.parse("oci-archive:/x.tar") == .ociArchive(path: "/x.tar"))
    #expect(try ImageSource.parse("docker-archive:img.tar") == .dockerArchive(path: "img.tar"))
    #expect(try ImageSource.parse("busybox") == .registry(try ImageReference.parse("docker.io/library/busybox:latest")))
}

@Test func chainIDsFollowTheOCISpec() {
    let a = Digest(of: Array("a".utf8)), b = Digest(of: Array("b".utf8))
    let chain = Digest.chainIDs([a, b])
    #expect(chain[0] == a)
    #expect(chain[1] == Digest(of: Array((a.description + " " + b.description).utf8)))
}
