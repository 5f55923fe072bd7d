import Foundation
import Testing
@testable import AgentCore

/// Resolving a job's secrets: precedence, fallbacks, limits and the errors for missing ones.
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

    @Test func jobFileAndEnvSources() throws {
        let dir = try Scratch()
        let file = try dir.write("npm.txt", "npm-token-value\n")
        let store = try SecretStore.resolve(
            job: job(dir.path, secrets: ["npm": SecretSpec(source: .file(file)), "token": SecretSpec(source: .env("CI_TOKEN"))]),
            cliSecrets: [], environment: ["CI_TOKEN": "ci-token-value"], cwd: "/")
        #expect(string(store.value(for: "npm")) == "npm-token-value\n")
        #expect(string(store.value(for: "token")) == "ci-token-value")
        #expect(store.ids == ["npm", "token"])
        #expect(store.warnings.isEmpty)
    }

    @Test func relativeJobFileResolvesAgainstTheJobFolder() throws {
        let dir = try Scratch()
        _ = try dir.write("rel.txt", "relative-value")
        let store = try SecretStore.resolve(job: job(dir.path, secrets: ["r": SecretSpec(source: .file("rel.txt"))]),
                                            cliSecrets: [], environment: [:], cwd: "/")
        #expect(string(store.value(for: "r")) == "relative-value")
    }

    @Test func cliFlagOverridesTheJob() throws {
        let dir = try Scratch()
        let file = try dir.write("job.txt", "from-the-job-file")
        let store = try SecretStore.resolve(
            job: job(dir.path, secrets: ["npm": SecretSpec(source: .file(file))]),
            cliSecrets: [try SecretSourceFlag(parsing: "id=npm,env=NPM_FROM_CLI")],
            environment: ["NPM_FROM_CLI": "from-the-command-line"], cwd: "/")
        #expect(string(store.value(for: "npm")) == "from-the-command-line")
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

    @Test func automaticPrefersTheEnvironmentThenTheFile() throws {
        let dir = try Scratch()
        _ = try dir.write("auto", "auto-file-value")
        let flag = try SecretSourceFlag(parsing: "id=auto")
        let fromEnv = try SecretStore.resolve(job: job("/"), cliSecrets: [flag], environment: ["auto": "auto-env-value"], cwd: dir.path)
        #expect(string(fromEnv.value(for: "auto")) == "auto-env-value")
        let fromFile = try SecretStore.resolve(job: job("/"), cliSecrets: [flag], environment: [:], cwd: dir.path)
        #expect(string(fromFile.value(for: "auto")) == "auto-file-value")
    }

    @Test func mountedSecretWithoutSourceFallsBackToEnvironment() throws {
        let store = try SecretStore.resolve(job: job("/", mounts: [mount("GH")]), cliSecrets: [],
                                            environment: ["GH": "github-token"], cwd: "/")
        #expect(string(store.value(for: "GH")) == "github-token")
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

    @Test func missingRequiredNamesTheIDAndEveryPlace() throws {
        let dir = try Scratch()
        for required in [job(dir.path, mounts: [mount("npm", required: true)]),
                         job(dir.path, secrets: ["npm": SecretSpec(source: nil, required: true)])] {
            let error = #expect(throws: SecretError.self) {
                try SecretStore.resolve(job: required, cliSecrets: [], environment: [:], cwd: "/")
            }
            #expect(error?.secretID == "npm")
            #expect(error?.exitCode == 2)
            let message = error?.description ?? ""
            #expect(message.hasPrefix(#"secret "npm": no source: "#), "\(message)")
            #expect(message.contains("no --secret flag"))
            #expect(message.contains(#"environment variable "npm" is not set"#))
            #expect(message.contains(#"file "\#(dir.path)/npm" does not exist"#))
        }
        let error = #expect(throws: SecretError.self) {
            try SecretStore.resolve(job: job(dir.path, mounts: [mount("npm", required: true)]), cliSecrets: [], environment: [:], cwd: "/")
        }
        #expect(error?.description.contains(#"not in the job's "secrets""#) == true)
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
            try SecretStore.resolve(job: job("/", secrets: ["t": SecretSpec(source: .env("CI_TOKEN"), required: true)]),
                                    cliSecrets: [], environment: [:], cwd: "/")
        }
        #expect(envError?.description.contains(#"environment variable "CI_TOKEN" is not set (from the job's "secrets")"#) == true,
                "\(envError?.description ?? "")")
    }

    @Test func valuesOverTheLimitAreRefusedWithIDAndSize() throws {
        let dir = try Scratch()
        let limit = SecretStore.defaultMaxBytes
        let big = try dir.write("big", String(repeating: "x", count: limit + 1))
        let error = #expect(throws: SecretError.self) {
            try SecretStore.resolve(job: job(dir.path, secrets: ["big": SecretSpec(source: .file(big))]),
                                    cliSecrets: [], environment: [:], cwd: "/")
        }
        #expect(error == .tooLarge(id: "big", source: "file \(SecretError.quote(big)) (from the job's \"secrets\")",
                                   bytes: limit + 1, limit: limit))
        #expect(error?.description.contains("\(limit + 1) bytes") == true)

        let atLimit = try dir.write("ok", String(repeating: "y", count: limit))
        let store = try SecretStore.resolve(job: job(dir.path, secrets: ["ok": SecretSpec(source: .file(atLimit))]),
                                            cliSecrets: [], environment: [:], cwd: "/")
        #expect(store.value(for: "ok")?.count == limit)

        #expect(throws: SecretError.self) {
            try SecretStore.resolve(job: job("/", secrets: ["e": SecretSpec(source: .env("BIG"))]), cliSecrets: [],
                                    environment: ["BIG": String(repeating: "z", count: 11)], cwd: "/", maxBytes: 10)
        }
    }

    @Test func directoryIsUnreadable() throws {
        let dir = try Scratch()
        let error = #expect(throws: SecretError.self) {
            try SecretStore.resolve(job: job("/", secrets: ["d": SecretSpec(source: .file(dir.path))]), cliSecrets: [],
                                    environment: [:], cwd: "/")
        }
        #expect(error?.description.contains("directory") == true)
    }

    @Test func shortValuesWarnWithoutTheValue() throws {
        let store = try SecretStore.resolve(
            job: job("/", secrets: ["pin": SecretSpec(source: .env("PIN")), "empty": SecretSpec(source: .env("EMPTY")),
                                    "long": SecretSpec(source: .env("LONG"))]),
            cliSecrets: [], environment: ["PIN": "4711\n", "EMPTY": "", "LONG": "long-enough"], cwd: "/")
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
