import Foundation
import Testing

/// Hostile job files: a job (from a fork, in CI) names secret ids but never where their
/// values come from. Only the operator's `--secret` flags and policy provide values.
@Suite(.serialized) struct SecretTrustTests {
    /// Stands for the agent user's private key: its content must never reach a job.
    static let key = "agent-private-key-7f3c9a21"

    /// Every place a value could leak to: the agent's output, results and state folder.
    func leaks(_ needle: String, in r: Harness.Result, _ f: JobFixture) -> [String] {
        var hits: [String] = []
        if r.stdout.contains(needle) { hits.append("stdout") }
        if r.stderr.contains(needle) { hits.append("stderr") }
        for dir in [f.results, f.state] {
            guard let e = FileManager.default.enumerator(atPath: dir) else { continue }
            while let rel = e.nextObject() as? String {
                if let data = FileManager.default.contents(atPath: dir + "/" + rel), data.range(of: Data(needle.utf8)) != nil {
                    hits.append(dir + "/" + rel)
                }
            }
        }
        return hits
    }

    /// The exploit of review 2.1 item 4: `"secrets": {"k": {"file": "<home>/.ssh/id_rsa"}}`
    /// and `cat /run/secrets/k | rev`. Refused before anything runs.
    @Test func jobNamingASecretFileIsRefusedBeforeAnythingRuns() async throws {
        let f = try JobFixture("", files: ["home/.ssh/id_rsa": Self.key])
        let keyFile = f.dir + "/home/.ssh/id_rsa"
        try Harness.write("""
        {"version": 1, "id": "hostile", "secrets": {"k": {"file": "\(keyFile)"}}, "steps": [
          {"name": "steal", "run": "echo ran > /mark/ran; cat /run/secrets/k | rev",
           "mounts": ["type=secret,id=k", "type=volume,source=mark,target=/mark"]}
        ]}
        """, to: f.job)
        let r = try await f.run()
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stderr.contains("secrets.k.file: a job cannot choose where a secret comes from"), "\(r.stderr)")
        #expect(r.stderr.contains("--secret id=k,src=FILE"), "\(r.stderr)")
        // Nothing ran: the step's marker is absent, and so is any results folder.
        #expect(!FileManager.default.fileExists(atPath: f.state + "/volumes/default/mark/data/ran"))
        #expect(!FileManager.default.fileExists(atPath: f.results))
        #expect(leaks(Self.key, in: r, f).isEmpty)
        #expect(leaks(String(Self.key.reversed()), in: r, f).isEmpty)
    }

    @Test func jobNamingAnEnvironmentVariableIsRefused() async throws {
        let f = try JobFixture("""
        {"version": 1, "id": "hostileenv", "secrets": {"k": {"env": "AGENT_IT_KEY"}}, "steps": [
          {"name": "steal", "run": "cat /run/secrets/k | rev", "mounts": ["type=secret,id=k"]}
        ]}
        """)
        let r = try await f.run(environment: ["AGENT_IT_KEY": Self.key])
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stderr.contains("secrets.k.env: a job cannot choose where a secret comes from"), "\(r.stderr)")
        #expect(leaks(Self.key, in: r, f).isEmpty && leaks(String(Self.key.reversed()), in: r, f).isEmpty)
    }

    /// BuildKit's fallback (a variable named like the id, else a file named like it beside
    /// the job) is gone: an id the operator did not provide is not provided.
    @Test func unprovidedIDsNeverReadTheAgentEnvironmentOrTheJobFolder() async throws {
        let f = try JobFixture("""
        {"version": 1, "id": "fallback", "steps": [
          {"name": "try", "mounts": ["type=secret,id=AGENT_IT_KEY", "type=secret,id=id_rsa"],
           "run": "for s in AGENT_IT_KEY id_rsa; do if test -e /run/secrets/$s; then rev /run/secrets/$s; else echo absent-$s; fi; done"}
        ]}
        """, files: ["id_rsa": Self.key])
        let r = try await f.run(environment: ["AGENT_IT_KEY": Self.key])
        #expect(r.status == 0, "\(r.stderr)")
        let log = try f.read("logs/01-try.log")
        #expect(log.contains("out absent-AGENT_IT_KEY") && log.contains("out absent-id_rsa"), "\(log)")
        #expect(leaks(Self.key, in: r, f).isEmpty && leaks(String(Self.key.reversed()), in: r, f).isEmpty)

        try Harness.write("""
        {"version": 1, "id": "fallback", "secrets": {"id_rsa": {"required": true}}, "steps": [
          {"name": "first", "run": "echo ran > /mark/ran", "mounts": ["type=volume,source=mark,target=/mark"]},
          {"name": "try", "run": "rev /run/secrets/id_rsa", "mounts": ["type=secret,id=id_rsa"]}
        ]}
        """, to: f.job)
        let required = try await f.run(["--force"], environment: ["id_rsa": Self.key])
        #expect(required.status == 2, "\(required.stderr)")
        #expect(required.stderr.contains(#"secret "id_rsa" is required but not provided"#), "\(required.stderr)")
        #expect(!FileManager.default.fileExists(atPath: f.state + "/volumes/default/mark/data/ran"))
        #expect(leaks(Self.key, in: required, f).isEmpty)
    }

    /// The policy's `secrets`: a relative file against the policy's folder, and an env
    /// secret limited to scope `default` that a `--cache-scope forks` job does not get.
    @Test func policySecretsAndTheirScopes() async throws {
        let f = try JobFixture("""
        {"version": 1, "id": "policy", "secrets": {"npm": {"required": true}, "deploy": {"required": true}}, "steps": [
          {"name": "use", "run": "wc -c < /run/secrets/npm; test \\"$(cat /run/secrets/deploy)\\" = deploy-token-value-1 && echo deploy-ok",
           "mounts": ["type=secret,id=npm", "type=secret,id=deploy"]}
        ]}
        """, files: [
            "etc/npm.txt": "npm-token-value-12",
            "etc/policy.json": #"{"secrets": {"npm": {"file": "npm.txt"}, "deploy": {"env": "DEPLOY_IT", "scopes": ["default"]}}}"#,
        ])
        let policy = ["--policy", f.dir + "/etc/policy.json"]
        let env = ["DEPLOY_IT": "deploy-token-value-1"]
        let trusted = try await f.run(policy, environment: env)
        #expect(trusted.status == 0, "\(trusted.stderr)")
        let log = try f.read("logs/01-use.log")
        #expect(log.contains("out 18") && log.contains("out deploy-ok"), "\(log)")

        let fork = try await f.run(policy + ["--force", "--cache-scope", "forks"], environment: env)
        #expect(fork.status == 2, "\(fork.stderr)")
        #expect(fork.stderr.contains(#"secret "deploy" is required but not provided: not provided for scope "forks""#), "\(fork.stderr)")
        #expect(!fork.stderr.contains("deploy-token-value-1"))

        // The operator's flag wins over the policy.
        let flag = try await f.run(policy + ["--force", "--secret", "id=deploy,env=OTHER"],
                                   environment: ["OTHER": "deploy-token-value-1", "DEPLOY_IT": "wrong-value-0000"])
        #expect(flag.status == 0, "\(flag.stderr)")
    }
}
