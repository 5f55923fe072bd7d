import Foundation
import Testing

/// `agent login` / `agent logout` against the Bearer registry of ci/test.sh, whose token
/// server gives a token only for ci:secret: what login stores is what the pull then sends.
@Suite(.serialized) struct LoginTests {
    var registry: String { ImageAuthTests.registry }
    var ref: String { registry + "/private/busybox:1" }

    func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as! NSNumber).intValue
    }

    func auths(_ path: String) throws -> [String: Any] {
        let doc = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        return doc["auths"] as? [String: Any] ?? [:]
    }

    @Test func loginStoresWhatThePullSendsAndLogoutRemovesIt() async throws {
        let dir = try Harness.scratch("login")
        let file = dir + "/auth.json"
        // Another registry's login and a key of docker's own stay as they were.
        let other = Data("o:p".utf8).base64EncodedString()
        try Harness.write(#"{"auths": {"other.example:5000": {"auth": "\#(other)"}, "http://\#(registry)/": {"auth": "eDp5"}}, "HttpHeaders": {"X-A": "b"}}"#,
                          to: file, mode: 0o600)
        let env = ["REGISTRY_AUTH_FILE": file]
        // --no-verify: stored without asking the registry (so the pull below is what refuses it).
        let wrong = try await Harness.run(["login", registry, "--username", "ci", "--password-stdin", "--no-verify"], environment: env, stdin: "wrong\n")
        #expect(wrong.status == 0, "\(wrong.stderr)")
        #expect(!wrong.stdout.contains("wrong") && !wrong.stderr.contains("wrong"))
        #expect(try mode(file) == 0o600)
        var a = try auths(file)
        // The old key of the same registry (http://HOST/) is replaced, not kept beside.
        #expect(Set(a.keys) == [registry, "other.example:5000"], "\(a)")
        #expect((a[registry] as? [String: Any])?["auth"] as? String == Data("ci:wrong".utf8).base64EncodedString())
        let refused = try await Harness.run(["image", "pull", "--state-dir", dir + "/state", ref], environment: env)
        #expect(refused.status == 3, "\(refused.stderr)")

        let right = try await Harness.run(["login", registry, "--username", "ci", "--password-stdin"], environment: env, stdin: "secret\n")
        #expect(right.status == 0 && !right.stdout.contains("secret"), "\(right.stdout)\(right.stderr)")
        a = try auths(file)
        #expect((a[registry] as? [String: Any])?["auth"] as? String == Data("ci:secret".utf8).base64EncodedString())
        #expect((a["other.example:5000"] as? [String: Any])?["auth"] as? String == other)
        let doc = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as! [String: Any]
        #expect((doc["HttpHeaders"] as? [String: String]) == ["X-A": "b"])
        let pulled = try await Harness.run(["image", "pull", "--state-dir", dir + "/state", ref], environment: env)
        #expect(pulled.status == 0, "\(pulled.stderr)")
        // No temporary file is left beside it.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix(".agent-auth") }.isEmpty)

        let out = try await Harness.run(["logout", registry], environment: env)
        #expect(out.status == 0, "\(out.stderr)")
        #expect(Set(try auths(file).keys) == ["other.example:5000"])
        #expect(try mode(file) == 0o600)
        let again = try await Harness.run(["logout", registry], environment: env)
        #expect(again.status == 1 && again.stderr.contains("not logged in to \(registry)"), "\(again.stderr)")
        let gone = try await Harness.run(["image", "pull", "--state-dir", dir + "/fresh", ref], environment: env)
        #expect(gone.status == 3, "\(gone.stderr)")
    }

    @Test func withoutRegistryAuthFileLoginWritesAPrivateDockerConfigInHome() async throws {
        let home = try Harness.scratch("login-home")
        let env = ["HOME": home]
        let r = try await Harness.run(["login", registry, "--username", "ci", "--password-stdin"], environment: env, stdin: "secret")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try mode(home + "/.docker") == 0o700)
        #expect(try mode(home + "/.docker/config.json") == 0o600)
        let pulled = try await Harness.run(["image", "pull", "--state-dir", home + "/state", ref], environment: env)
        #expect(pulled.status == 0, "\(pulled.stderr)")
    }

    @Test(arguments: ["AGENT_TEST_AUTH_REGISTRY", "AGENT_TEST_BASIC_REGISTRY"])
    func loginAsksTheRegistryFirstAndStoresNothingItRefuses(variable: String) async throws {
        let registry = ImageFaultTests.env(variable)
        let dir = try Harness.scratch("login-verify")
        let file = dir + "/auth.json"
        let env = ["REGISTRY_AUTH_FILE": file]
        let wrong = try await Harness.run(["login", registry, "--username", "ci", "--password-stdin"], environment: env, stdin: "wrong\n")
        #expect(wrong.status == 1 && wrong.stderr.contains("refused the login for ci") && wrong.stderr.contains("nothing was stored"), "\(wrong.stderr)")
        #expect(!wrong.stderr.contains("wrong"))
        #expect(!FileManager.default.fileExists(atPath: file))
        let right = try await Harness.run(["login", registry, "--username", "ci", "--password-stdin"], environment: env, stdin: "secret\n")
        #expect(right.status == 0, "\(right.stderr)")
        #expect((try auths(file)[registry] as? [String: Any])?["auth"] as? String == Data("ci:secret".utf8).base64EncodedString())
        // Nobody listens there: the registry cannot be asked (3), and nothing is stored.
        let gone = try await Harness.run(["login", "127.0.0.1:1", "--username", "ci", "--password-stdin"], environment: env, stdin: "x\n")
        #expect(gone.status == 3 && gone.stderr.contains("--no-verify"), "\(gone.stderr)")
        #expect(try auths(file)["127.0.0.1:1"] == nil)
    }

    @Test func loginRefusesAMissingUserOrPasswordAndABadRegistry() async throws {
        let dir = try Harness.scratch("login-bad")
        let env = ["REGISTRY_AUTH_FILE": dir + "/auth.json"]
        let noUser = try await Harness.run(["login", registry, "--password-stdin"], environment: env, stdin: "x")
        #expect(noUser.status == 64 && noUser.stderr.contains("--username"), "\(noUser.status) \(noUser.stderr)")
        let empty = try await Harness.run(["login", registry, "--username", "ci", "--password-stdin"], environment: env, stdin: "\n")
        #expect(empty.status == 64 && empty.stderr.contains("password is empty"), "\(empty.status) \(empty.stderr)")
        let bad = try await Harness.run(["login", "host/path", "--username", "ci", "--password-stdin"], environment: env, stdin: "x")
        #expect(bad.status == 64, "\(bad.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/auth.json"))
    }
}
