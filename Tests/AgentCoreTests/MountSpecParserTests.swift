import AgentSupport
import Foundation
import Testing
@testable import AgentCore

@Suite struct MountSpecParserTests {
    func json(_ text: String) throws -> [String: JSONValue] {
        guard case .object(let o) = try JSONValue.parse(Array(text.utf8)) else { throw CancellationError() }
        return o
    }

    @Test func cacheWithEveryOption() throws {
        let m = try MountSpec.parse(buildKit: "type=cache,target=/root/.cache/pip,id=pip,sharing=locked,ro,mode=0700,uid=1000,gid=100", path: "p")
        var c = MountSpec.Cache(target: "/root/.cache/pip", id: "pip")
        c.sharing = .locked
        c.readOnly = true
        c.mode = 0o700
        c.uid = 1000
        c.gid = 100
        #expect(m == .cache(c))
    }

    @Test func cacheDefaults() throws {
        let m = try MountSpec.parse(buildKit: "type=cache,target=/var/cache/apk", path: "p")
        guard case .cache(let c) = m else { Issue.record("not a cache"); return }
        #expect(c.id == "/var/cache/apk")
        #expect(c.sharing == .shared)
        #expect(!c.readOnly)
        #expect(c.mode == 0o755)
    }

    @Test func dockerfileStringEqualsJSONForm() throws {
        // As copied from a Dockerfile's `RUN --mount=...`.
        let fromDockerfile = try MountSpec.parse(buildKit: "type=cache,id=gomod,target=/go/pkg/mod,sharing=private,readonly=false,mode=0755", path: "p")
        let fromJSON = try MountSpec.parse(object: try json(#"{"type":"cache","id":"gomod","dst":"/go/pkg/mod","sharing":"private","readonly":false,"mode":"0755"}"#), path: "p")
        #expect(fromDockerfile == fromJSON)
        let numericMode = try MountSpec.parse(object: try json(#"{"type":"cache","id":"gomod","target":"/go/pkg/mod","sharing":"private","mode":755}"#), path: "p")
        #expect(numericMode == fromJSON)
    }

    @Test func synonyms() throws {
        let a = try MountSpec.parse(buildKit: "type=bind,src=/srv/data,destination=/data,readwrite", path: "p")
        let b = try MountSpec.parse(buildKit: "type=bind,source=/srv/data,dst=/data,rw=true", path: "p")
        let c = try MountSpec.parse(buildKit: "source=/srv/data,target=/data,ro=false", path: "p") // type defaults to bind
        #expect(a == .bind(source: "/srv/data", target: "/data", readWrite: true))
        #expect(a == b)
        #expect(a == c)
        #expect(try MountSpec.parse(buildKit: "type=bind,source=x,target=/x", path: "p") == .bind(source: "x", target: "/x", readWrite: false))
    }

    @Test func otherTypes() throws {
        #expect(try MountSpec.parse(buildKit: "type=volume,source=data,target=/data,ro", path: "p")
                == .volume(source: "data", target: "/data", readOnly: true))
        #expect(try MountSpec.parse(buildKit: "type=tmpfs,target=/tmp,size=64m", path: "p")
                == .tmpfs(target: "/tmp", size: 64 * 1024 * 1024, mode: 0o1777))
        #expect(try MountSpec.parse(object: try json(#"{"type":"tmpfs","target":"/t","size":4096,"mode":"0700"}"#), path: "p")
                == .tmpfs(target: "/t", size: 4096, mode: 0o700))
        #expect(try MountSpec.parse(tmpfsShorthand: "/workspace/.cache:size=16m", path: "p")
                == .tmpfs(target: "/workspace/.cache", size: 16 * 1024 * 1024, mode: 0o1777))
        var s = MountSpec.Secret(id: "npmrc", target: "/root/.npmrc", env: nil)
        s.required = true
        #expect(try MountSpec.parse(buildKit: "type=secret,id=npmrc,dst=/root/.npmrc,required", path: "p") == .secret(s))
        let e = try MountSpec.parse(buildKit: "type=secret,id=token,env=TOKEN", path: "p")
        #expect(e == .secret(MountSpec.Secret(id: "token", target: nil, env: "TOKEN")))
        #expect(try MountSpec.parse(buildKit: "type=secret,id=k", path: "p").target == "/run/secrets/k")
    }

    @Test func quotedFields() throws {
        let m = try MountSpec.parse(buildKit: #"type=cache,"target=/a,b",id=x"#, path: "p")
        #expect(m.target == "/a,b")
    }

    @Test func errorsNameThePathAndOption() {
        func message(_ text: String) -> String {
            do { _ = try MountSpec.parse(buildKit: text, path: "steps[1].mounts[0]"); return "no error" } catch { return "\(error)" }
        }
        #expect(message("type=cache,target=/c,sharng=locked") == #"steps[1].mounts[0]: unknown mount option "sharng" (did you mean "sharing"?)"#)
        #expect(message("type=cahce,target=/c").contains(#"unknown mount type "cahce""#))
        #expect(message("type=cache").contains("needs a \"target\""))
        #expect(message("type=cache,target=relative/dir").contains("must be an absolute path"))
        #expect(message("type=cache,target=/c,sharing=exclusive").contains(#"invalid sharing "exclusive""#))
        #expect(message("type=tmpfs,target=/t,size=lots").contains("invalid tmpfs size"))
        #expect(message("type=cache,target=/c,mode=999").contains("invalid mode"))
        #expect(message("type=volume,source=../x,target=/x").contains("invalid volume name"))
        #expect(message("type=tmpfs,target=/t,id=x").contains(#"mount option "id" does not apply to type=tmpfs"#))
        #expect(message("type=bind,target=/x").contains("needs a \"source\""))
        #expect(message("type=cache,target=/c,ro,rw").contains("contradict"))
        #expect(message("type=cache,target=/c,ro=maybe").contains("must be true or false"))
        #expect(message("type=bind,from=builder,target=/x").contains("\"from\" is not supported"))
    }

    @Test func jsonErrors() throws {
        #expect(throws: JobValidationError.self) {
            try MountSpec.parse(object: try json(#"{"type":"cache","target":"/c","ro":[1]}"#), path: "p")
        }
        #expect(throws: JobValidationError.self) {
            try MountSpec.parse(object: try json(#"{"type":"cache","target":"/c","ro":1}"#), path: "p")
        }
    }

    @Test func valuesBuiltInCodeParseLikeJSON() throws {
        let native: [String: JSONValue] = ["type": .string("cache"), "target": .string("/c"), "ro": .bool(true), "uid": .unsigned(1000)]
        var c = MountSpec.Cache(target: "/c")
        c.readOnly = true
        c.uid = 1000
        #expect(try MountSpec.parse(object: native, path: "p") == .cache(c))
    }

    @Test func byteSizes() {
        #expect(ByteSize.parse("10GB") == 10 * 1024 * 1024 * 1024)
        #expect(ByteSize.parse("512") == 512)
        #expect(ByteSize.parse("1.5k") == 1536)
        #expect(ByteSize.parse("-1") == nil)
        #expect(ByteSize.parse("1x") == nil)
    }
}
