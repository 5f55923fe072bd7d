import Foundation
import Testing
@testable import AgentCore
import SandboxPolicy

/// Resolving a job's secrets: operator sources only (flags, policy), precedence, scopes, limits and the errors.
@Suite struct SecretStoreTests {
    /// A scratch folder for secret files; removed by `cleanUp()`.
    final class Scratch {
        let path: String
        init() throws {
            path = FileManager.default.temporaryDirectory.appendingPathComponent("secret-store-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        func write(_ name: String, _ contents: String) throws -> String {
            let file = path + "/" + name
            try Data(contents.utf8).write(to: URL(fileURLWithPath: file))
            return file
        }
        deinit { try? FileManager.default.removeItem(atPath: path) }
    }

    func job(_ dir: String, secrets: [String: SecretSpec] = [:], mounts: [MountSpec] = []) -> JobSpec {
        var step = StepSpec(name: "build", run: .shell("true"))
        step.mounts = mounts
        var job = JobSpec(id: "j", steps: [step], baseDirectory: dir)
        job.secrets = secrets
        return job
    }

    func mount(_ id: String, required: Bool = false) -> MountSpec {
        var secret = MountSpec.Secret(id: id, target: nil, env: nil)
        secret.required = required
        return .secret(secret)
    }

    func string(_ bytes: [UInt8]?) -> String? { bytes.map { String(decoding: $0, as: UTF8.self) } }

    // MARK: hostile jobs: a job names ids, never where values come from

    /// An id the job names, and one a step mounts, that match a variable of the agent's
    /// environment and a file beside the job, with no operator source: not provided.
    /// BuildKit's fallback (variable, else file named like the id) must not apply.
    @Test func unprovidedIDNeverFallsBackToTheAgentEnvironmentOrTheJobFolder() throws {
        let dir = try Scratch()
        _ = try dir.write("id_rsa", "private-key-beside-the-job")
        let environment = ["HOME": "/home/agent", "AGENT_TEST_TOKEN": "agent-own-token"]
        let hostile = job(dir.path, secrets: ["HOME": SecretSpec(), "id_rsa": SecretSpec()],
                          mounts: [mount("AGENT_TEST_TOKEN"), mount("id_rsa")])
        let store = try SecretStore.resolve(job: hostile, cliSecrets: [], environment: environment, cwd: dir.path)
        #expect(store.isEmpty, "\(store)")
        #expect(store.value(for: "HOME") == nil && store.value(for: "AGENT_TEST_TOKEN") == nil && store.value(for: "id_rsa") == nil)
        #expect(store.warnings.isEmpty)
    }

    @Test func requiredUnprovidedIDIsAnErrorNamingItAndWhereSourcesComeFrom() throws {
        let dir = try Scratch()
        _ = try dir.write("npm", "file-beside-the-job")
        for required in [job(dir.path, mounts: [mount("npm", required: true)]),
                         job(dir.path, secrets: ["npm": SecretSpec(required: true)])] {
            let error = #expect(throws: SecretError.self) {
                try SecretStore.resolve(job: required, cliSecrets: [], environment: ["npm": "agent-env-value"], cwd: dir.path)
            }
            #expect(error?.secretID == "npm")
            #expect(error?.exitCode == 2)
            let message = error?.description ?? ""
            #expect(message.hasPrefix(#"secret "npm" is required but not provided: "#), "\(message)")
            #expect(message.contains("--secret id=npm,src=FILE"), "\(message)")
            #expect(message.contains(#""secrets" in the agent policy"#), "\(message)")
            #expect(!message.contains("agent-env-value") && !message.contains("file-beside-the-job"))
        }
    }

    // MARK: operator sources

    @Test func policyFileAndEnvSources() throws {
        let dir = try Scratch()
        let file = try dir.write("npm.txt", "npm-token-value\n")
        let policy: [String: AgentPolicy.Secret] = ["npm": .init(source: .file(file)), "token": .init(source: .env("CI_TOKEN"))]
        let store = try SecretStore.resolve(
            job: job(dir.path, secrets: ["npm": SecretSpec(), "token": SecretSpec()]),
            cliSecrets: [], policySecrets: policy, environment: ["CI_TOKEN": "ci-token-value"], cwd: "/")
        #expect(string(store.value(for: "npm")) == "npm-token-value\n")
        #expect(string(store.value(for: "token")) == "ci-token-value")
        #expect(store.ids == ["npm", "token"])
        #expect(store.warnings.isEmpty)
    }

    @Test func policySecretsTheJobDoesNotNameAreNotRead() throws {
        let policy: [String: AgentPolicy.Secret] = ["unused": .init(source: .env("UNUSED"))]
        let store = try SecretStore.resolve(job: job("/"), cliSecrets: [], policySecrets: policy,
                                            environment: ["UNUSED": "unused-value"], cwd: "/")
        #expect(store.isEmpty)
    }

    @Test func scopeLimitedPolicySecretIsProvidedOnlyInItsScopes() throws {
        let policy: [String: AgentPolicy.Secret] = ["deploy": .init(source: .env("DEPLOY_TOKEN"), scopes: ["default", "release"])]
        let env = ["DEPLOY_TOKEN": "deploy-token-value"]
        var trusted = job("/", mounts: [mount("deploy", required: true)])
        trusted.cacheScope = "release"
        let inScope = try SecretStore.resolve(job: trusted, cliSecrets: [], policySecrets: policy, environment: env, cwd: "/")
        #expect(string(inScope.value(for: "deploy")) == "deploy-token-value")

        var fork = trusted
        fork.cacheScope = "forks"
        let error = #expect(throws: SecretError.self) {
            try SecretStore.resolve(job: fork, cliSecrets: [], policySecrets: policy, environment: env, cwd: "/")
        }
        #expect(error?.secretID == "deploy")
        #expect(error?.description.contains(#"not provided for scope "forks""#) == true, "\(error?.description ?? "")")
        #expect(error?.description.contains(#"secrets.deploy is limited to scopes "default", "release""#) == true)

        var optional = job("/", mounts: [mount("deploy")])
        optional.cacheScope = "forks"
        let skipped = try SecretStore.resolve(job: optional, cliSecrets: [], policySecrets: policy, environment: env, cwd: "/")
        #expect(skipped.value(for: "deploy") == nil)
        #expect(skipped.warnings.count == 1 && skipped.warnings[0].contains(#"not provided for scope "forks""#))
        #expect(!skipped.warnings[0].contains("deploy-token-value"))
    }

    @Test func relativePolicyFileWasResolvedAgainstThePolicyFolderWhenLoaded() throws {
        let dir = try Scratch()
        _ = try dir.write("npm.txt", "policy-relative-value")
        let policyFile = try dir.write("policy.json", #"{"secrets": {"npm": {"file": "npm.txt"}}}"#)
        let policy = try AgentPolicy.load(path: policyFile)
        #expect(policy.secrets["npm"] == .init(source: .file(dir.path + "/npm.txt")))
        let store = try SecretStore.resolve(job: job("/elsewhere", mounts: [mount("npm")]), cliSecrets: [],
                                            policySecrets: policy.secrets, environment: [:], cwd: "/")
        #expect(string(store.value(for: "npm")) == "policy-relative-value")
    }

    @Test func cliFlagOverridesThePolicy() throws {
        let dir = try Scratch()
        let file = try dir.write("policy.txt", "from-the-policy")
        let store = try SecretStore.resolve(
            job: job(dir.path, secrets: ["npm": SecretSpec()]),
            cliSecrets: [try SecretSourceFlag(parsing: "id=npm,env=NPM_FROM_CLI")],
            policySecrets: ["npm": .init(source: .file(file))],
            environment: ["NPM_FROM_CLI": "from-the-command-line"], cwd: "/")
        #expect(string(store.value(for: "npm")) == "from-the-command-line")
    }

    @Test func cliFlagOverridesAScopeLimit() throws {
        // The operator's flag is explicit for this run: it wins whatever the policy limits.
        var fork = job("/", mounts: [mount("deploy", required: true)])
        fork.cacheScope = "forks"
        let store = try SecretStore.resolve(
            job: fork, cliSecrets: [try SecretSourceFlag(parsing: "id=deploy,env=FLAG")],
            policySecrets: ["deploy": .init(source: .env("POLICY"), scopes: ["default"])],
            environment: ["FLAG": "flag-value-123", "POLICY": "policy-value-123"], cwd: "/")
        #expect(string(store.value(for: "deploy")) == "flag-value-123")
    }

    @Test func laterFlagForTheSameIDWins() throws {
        let store = try SecretStore.resolve(
            job: job("/"), cliSecrets: [try SecretSourceFlag(parsing: "id=a,env=ONE"), try SecretSourceFlag(parsing: "id=a,env=TWO")],
            environment: ["ONE": "first-value", "TWO": "second-value"], cwd: "/")
        #expect(string(store.value(for: "a")) == "second-value")
    }

    @Test func cliRelativeSrcResolvesAgainstTheCurrentDirectory() throws {
        let dir = try Scratch()
        _ = try dir.write("cli.txt", "cli-file-value")
        let store = try SecretStore.resolve(job: job("/nonexistent"), cliSecrets: [try SecretSourceFlag(parsing: "id=c,src=cli.txt")],
                                            environment: [:], cwd: dir.path)
        #expect(string(store.value(for: "c")) == "cli-file-value")
    }

    /// `--secret id=x` alone is the operator's own flag: BuildKit's meaning stays.
    @Test func automaticFlagPrefersTheEnvironmentThenTheFile() throws {
        let dir = try Scratch()
        _ = try dir.write("auto", "auto-file-value")
        let flag = try SecretSourceFlag(parsing: "id=auto")
        let fromEnv = try SecretStore.resolve(job: job("/"), cliSecrets: [flag], environment: ["auto": "auto-env-value"], cwd: dir.path)
        #expect(string(fromEnv.value(for: "auto")) == "auto-env-value")
        let fromFile = try SecretStore.resolve(job: job("/"), cliSecrets: [flag], environment: [:], cwd: dir.path)
        #expect(string(fromFile.value(for: "auto")) == "auto-file-value")
    }

    @Test func optionalSecretWithoutValueIsLeftOut() throws {
        let store = try SecretStore.resolve(job: job("/nonexistent", mounts: [mount("opt")]), cliSecrets: [],
                                            environment: [:], cwd: "/")
        #expect(store.value(for: "opt") == nil)
        #expect(store.warnings.isEmpty)
    }

    @Test func optionalConfiguredSourceMissingIsAWarning() throws {
        let store = try SecretStore.resolve(job: job("/", mounts: [mount("opt")]),
                                            cliSecrets: [try SecretSourceFlag(parsing: "id=opt,src=/nonexistent/opt.txt")],
                                            environment: [:], cwd: "/")
        #expect(store.value(for: "opt") == nil)
        #expect(store.warnings.count == 1)
        #expect(store.warnings[0].contains(#"secret "opt""#))
        #expect(store.warnings[0].contains(#"file "/nonexistent/opt.txt""#))
    }

    @Test func requiredWithMissingConfiguredSourceNamesTheSource() throws {
        let error = #expect(throws: SecretError.self) {
            try SecretStore.resolve(job: job("/", mounts: [mount("npm", required: true)]),
                                    cliSecrets: [try SecretSourceFlag(parsing: "id=npm,src=/nonexistent/npm.txt")],
                                    environment: [:], cwd: "/")
        }
        let message = error?.description ?? ""
        #expect(message.contains(#"secret "npm" is required"#))
        #expect(message.contains(#"file "/nonexistent/npm.txt" does not exist (from --secret "id=npm,src=/nonexistent/npm.txt")"#), "\(message)")

        let envError = #expect(throws: SecretError.self) {
            try SecretStore.resolve(job: job("/", secrets: ["t": SecretSpec(required: true)]), cliSecrets: [],
                                    policySecrets: ["t": .init(source: .env("CI_TOKEN"))], environment: [:], cwd: "/")
        }
        #expect(envError?.description.contains(#"environment variable "CI_TOKEN" is not set (from the agent policy's secrets.t)"#) == true,
                "\(envError?.description ?? "")")
    }

    @Test func valuesOverTheLimitAreRefusedWithIDAndSize() throws {
        let dir = try Scratch()
        let limit = SecretStore.defaultMaxBytes
        let big = try dir.write("big", String(repeating: "x", count: limit + 1))
        let error = #expect(throws: SecretError.self) {
            try SecretStore.resolve(job: job(dir.path, secrets: ["big": SecretSpec()]),
                                    cliSecrets: [], policySecrets: ["big": .init(source: .file(big))], environment: [:], cwd: "/")
        }
        #expect(error == .tooLarge(id: "big", source: "file \(SecretError.quote(big)) (from the agent policy's secrets.big)",
                                   bytes: limit + 1, limit: limit))
        #expect(error?.description.contains("\(limit + 1) bytes") == true)

        let atLimit = try dir.write("ok", String(repeating: "y", count: limit))
        let store = try SecretStore.resolve(job: job(dir.path, secrets: ["ok": SecretSpec()]), cliSecrets: [],
                                            policySecrets: ["ok": .init(source: .file(atLimit))], environment: [:], cwd: "/")
        #expect(store.value(for: "ok")?.count == limit)

        #expect(throws: SecretError.self) {
            try SecretStore.resolve(job: job("/", secrets: ["e": SecretSpec()]), cliSecrets: [],
                                    policySecrets: ["e": .init(source: .env("BIG"))], environment: ["BIG": String(repeating: "z", count: 11)], cwd: "/", maxBytes: 10)
        }
    }

    @Test func directoryIsUnreadable() throws {
        let dir = try Scratch()
        let error = #expect(throws: SecretError.self) {
            try SecretStore.resolve(job: job("/", secrets: ["d": SecretSpec()]), cliSecrets: [],
                                    policySecrets: ["d": .init(source: .file(dir.path))], environment: [:], cwd: "/")
        }
        #expect(error?.description.contains("directory") == true)
    }

    @Test func shortValuesWarnWithoutTheValue() throws {
        let store = try SecretStore.resolve(
            job: job("/", secrets: ["pin": SecretSpec(), "empty": SecretSpec(), "long": SecretSpec()]), cliSecrets: [],
            policySecrets: ["pin": .init(source: .env("PIN")), "empty": .init(source: .env("EMPTY")), "long": .init(source: .env("LONG"))],
            environment: ["PIN": "4711\n", "EMPTY": "", "LONG": "long-enough"], cwd: "/")
        #expect(store.warnings.count == 2)
        #expect(store.warnings.contains { $0.contains(#"secret "pin""#) && $0.contains("shorter than 6 bytes") })
        #expect(store.warnings.contains { $0.contains(#"secret "empty" is empty"#) })
        #expect(!store.warnings.joined().contains("4711"))
        #expect(store.value(for: "empty") == [])
    }

    @Test func descriptionShowsIDsNotValues() throws {
        let store = SecretStore(values: ["a": Array("hunter2-secret".utf8)])
        #expect(!"\(store)".contains("hunter2"))
        #expect(!String(reflecting: store).contains("hunter2"))
        var dumped = ""
        dump(store, to: &dumped)
        #expect(!dumped.contains("hunter2"))
    }
}
