import Foundation
import Testing

/// Build secrets in real jobs: mounted only where asked, never written anywhere, redacted.
@Suite(.serialized) struct SecretJobTests {
    static let secret = "hunter2-correct-horse"

    func grepTree(_ dir: String, for needle: String) throws -> [String] { Harness.filesContaining(needle, in: dir) }

    @Test func secretFileOnlyWhereMountedWithMode0400() async throws {
        let f = try JobFixture("""
        {"version": 1, "id": "sfile", "secrets": {"npm": {"required": true}}, "steps": [
          {"name": "uses", "run": "stat -c '%a %u' /run/secrets/npm; wc -c < /run/secrets/npm", "mounts": ["type=secret,id=npm"]},
          {"name": "other", "run": "test ! -e /run/secrets/npm && echo absent"}
        ]}
        """, files: ["npm.txt": Self.secret])
        let r = try await f.run(["--secret", "id=npm,src=" + f.dir + "/npm.txt"])
        #expect(r.status == 0, "\(r.stderr)")
        let log = try f.read("logs/01-uses.log")
        #expect(log.contains("out 400 0"))
        #expect(log.contains("out \(Self.secret.utf8.count)"))
        #expect(try f.read("logs/02-other.log").contains("out absent"))
    }

    @Test func envFormAndCLIFlagsAreRedactedEverywhere() async throws {
        let s = Self.secret
        let b64 = Data(s.utf8).base64EncodedString()
        let f = try JobFixture(#"""
        {"version": 1, "id": "sredact", "steps": [
          {"name": "leak", "mounts": [{"type": "secret", "id": "token", "env": "TOKEN"}, "type=secret,id=fromfile,target=/run/secrets/f"],
           "run": "echo plain $TOKEN; printf %s \"$TOKEN\" | base64; printf 'x%s' \"$TOKEN\" | base64; printf 'xy%s' \"$TOKEN\" | base64; echo json \"{\\\"t\\\":\\\"$TOKEN\\\"}\"; printf %s \"$TOKEN\" | head -c 8; sleep 0.3; printf '%s\\n' \"$(printf %s \"$TOKEN\" | tail -c +9)\"; echo file $(cat /run/secrets/f); echo $TOKEN >&2; exit 1"}
        ]}
        """#, files: ["other.txt": "file-secret-value-42"])
        let r = try await Harness.run(
            ["run-job", f.job, "--output", f.results, "--state-dir", f.state, "--progress", "plain",
             "--secret", "id=token,env=MY_TOKEN", "--secret", "id=fromfile,src=" + f.dir + "/other.txt"],
            environment: ["MY_TOKEN": s])
        #expect(r.status == 1, "\(r.stderr)")
        let log = try f.read("logs/01-leak.log")
        #expect(log.contains("out plain ***"), "\(log)")
        #expect(log.contains("out file ***"), "\(log)")
        #expect(log.contains("err ***"), "\(log)")
        for needle in [s, b64, "file-secret-value-42"] {
            #expect(!r.stderr.contains(needle))
            #expect(try grepTree(f.results, for: needle).isEmpty, "\(needle) leaked")
            #expect(try grepTree(f.state, for: needle).isEmpty, "\(needle) under the state folder")
        }
        // Each base64 alignment.
        for shift in ["", "x", "xy"] {
            let enc = Data((shift + s).utf8).base64EncodedString()
            let inner = String(enc.dropFirst(shift.isEmpty ? 0 : 4).prefix(16))
            #expect(!log.contains(inner), "base64 with offset \(shift.count) leaked")
        }
        // The JSON progress stream is redacted too.
        let json = try await Harness.run(
            ["run-job", f.job, "--output", f.dir + "/results-json", "--state-dir", f.state, "--progress", "json",
             "--secret", "id=token,env=MY_TOKEN", "--secret", "id=fromfile,src=" + f.dir + "/other.txt"],
            environment: ["MY_TOKEN": s])
        #expect(json.status == 1)
        #expect(!json.stderr.contains(s))
        #expect(json.stderr.contains("***"))
        #expect(!(try f.read("junit.xml")).contains(s))
    }

    @Test func multiLineSecretIsRedactedLineByLine() async throws {
        let f = try JobFixture("""
        {"version": 1, "id": "smulti", "secrets": {"key": {"required": true}}, "steps": [
          {"name": "show", "run": "cat /run/secrets/key", "mounts": ["type=secret,id=key"]}
        ]}
        """, files: ["key.pem": "-----BEGIN KEY-----\nAAAAline-one-secret\nBBBBline-two-secret\n-----END KEY-----\n"])
        let r = try await f.run(["--secret", "id=key,src=" + f.dir + "/key.pem"])
        #expect(r.status == 0, "\(r.stderr)")
        let log = try f.read("logs/01-show.log")
        #expect(!log.contains("line-one-secret"))
        #expect(!log.contains("line-two-secret"))
    }

    @Test func missingRequiredSecretExitsTwoBeforeAnythingRuns() async throws {
        let f = try JobFixture("""
        {"version": 1, "id": "smissing", "steps": [
          {"name": "first", "run": "touch /tmp/ran"},
          {"name": "needs", "run": "true", "mounts": ["type=secret,id=registry_password,required=true"]}
        ]}
        """)
        let r = try await f.run()
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stderr.contains("registry_password"))
        #expect(!FileManager.default.fileExists(atPath: f.results))
    }

    @Test func secretCopiedIntoAnArtifactIsReportedWithoutTheValue() async throws {
        let f = try JobFixture("""
        {"version": 1, "id": "sleak", "workspace": "src", "secrets": {"npm": {"required": true}}, "steps": [
          {"name": "leak", "run": "mkdir -p dist && cp /run/secrets/npm dist/oops.txt && echo fine > dist/ok.txt", "mounts": ["type=secret,id=npm"]}
        ],
        "artifacts": [{"name": "dist", "paths": ["dist/*"]}]}
        """, files: ["npm.txt": Self.secret, "src/README": "x\n"])
        let r = try await f.run(["--secret", "id=npm,src=" + f.dir + "/npm.txt"])
        #expect(r.status == 1, "\(r.stderr)")
        let status = try String(contentsOfFile: f.results + "/status.json", encoding: .utf8)
        #expect(status.contains("oops.txt"))
        #expect(status.contains("npm"))
        #expect(!status.contains(Self.secret))
        #expect(try grepTree(f.results, for: Self.secret).isEmpty)
    }
}
