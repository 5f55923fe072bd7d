import AgentSupport
import FoundationEssentials
import Glibc
import Sandbox
import SandboxPolicy

/// A job's resolved secrets with the matcher built once: redaction of every string the
/// agent writes, one streaming redactor per output stream, and the artifact leak scanner.
struct JobSecrets: Sendable {
    let store: SecretStore
    let matcher: SecretMatcher

    init(_ store: SecretStore) {
        self.store = store
        self.matcher = store.makeMatcher()
    }

    var warnings: [String] { store.warnings }
    func value(for id: String) -> [UInt8]? { store.value(for: id) }
    func redact(_ text: String) -> String { matcher.redact(text) }
    func streamRedactor() -> Redactor { Redactor(matcher) }
    var scanner: (any ArtifactScanner)? { store.isEmpty ? nil : SecretArtifactScanner(scanner: SecretScanner(matcher: matcher)) }
}

/// Rejects an artifact that contains a secret (raw or encoded), naming the file and the
/// secret id, never the value.
struct SecretArtifactScanner: ArtifactScanner {
    let scanner: SecretScanner

    func scan(artifact: String, path: String, fileDescriptor: Int32) throws -> ArtifactScanVerdict {
        let leaks = try scanner.scan(fileDescriptor: fileDescriptor, path: path)
        guard !leaks.isEmpty else { return .clean }
        let ids = Set(leaks.map(\.secretID)).sorted().map { "\"\($0)\"" }.joined(separator: ", ")
        return .reject("artifact file \(path) contains the value of secret \(ids)")
    }

    /// A name (path, rule name or symlink target) holding a secret or an encoded form of
    /// one is refused, naming the secret ids; `shown` has the secret masked.
    func checkName(_ name: String) -> ArtifactNameRejection? {
        let leaks = scanner.scan(bytes: Array(name.utf8), path: name)
        guard !leaks.isEmpty else { return nil }
        let ids = leaks.map { SecretError.quote($0.secretID) }.joined(separator: ", ")
        return ArtifactNameRejection(shown: scanner.matcher.redact(name),
                                     reason: leaks.count == 1 ? "contains secret \(ids)" : "contains secrets \(ids)")
    }
}

/// The mounts one step gets besides `/workspace`, `/tmp` and HOME.
struct StepMountPlan {
    var mounts: [Mount] = []
    var secretEnv: [String: String] = [:]
    var caches: [CacheUse] = []
    var plan: MountPlan?

    func release() { plan?.release() }
}

extension JobRunner {
    /// Caches, volumes, binds and tmpfs from the step's `mounts` (the cache store may make
    /// the step wait for a `locked` cache; the wait shows in progress), and secrets as files
    /// on a tmpfs private to the container or as env.
    func planMounts(step: StepSpec, index: Int, job: AdmittedJob, secrets: JobSecrets, progress: ProgressSink) async throws -> StepMountPlan {
        let planner = MountPlanner(state: StateDirectory(root: options.stateDirectory))
        let planned = try await planner.plan(
            step: step, stepIndex: index, job: job.spec, binds: job.binds,
            onWait: { reason in progress.send(.stepWaiting(index: index, reason: reason)) })
        var out = StepMountPlan(mounts: planned.mounts, caches: planned.caches, plan: planned)
        for secret in planned.secrets {
            guard let value = secrets.value(for: secret.id) else {
                if secret.required {
                    out.release()
                    throw JobValidationError(path: "steps[\(index)].mounts", message: "required secret \"\(secret.id)\" has no value")
                }
                continue  // BuildKit skips an optional secret that has no source.
            }
            if let env = secret.env {
                out.secretEnv[env] = String(decoding: value, as: UTF8.self)
            } else {
                let target = secret.target ?? "/run/secrets/\(secret.id)"
                out.mounts.append(Mount(target: target, kind: .file(contents: value, mode: secret.mode, uid: secret.uid, gid: secret.gid)))
            }
        }
        return out
    }

    /// Artifacts are read through a short-lived container that mounts the job's workspace
    /// read-only, so the collector sees exactly what the steps saw (the overlay merged),
    /// through `/proc/PID/root` and never outside it.
    func collectArtifacts(job: JobSpec, state: JobState, workspace: WorkspaceLayer, results: ResultsFolder,
                          secrets: JobSecrets, seccomp: SeccompPolicy, progress: ProgressSink) async -> (summary: ArtifactSummary?, failed: Bool) {
        let succeeded = state == .succeeded
        let rules = job.artifacts.filter { $0.when == .always || ($0.when == .onSuccess) == succeeded }
        guard !rules.isEmpty else { return (nil, false) }
        var config = ContainerConfiguration(command: ["/bin/true"])
        config.rootfs = .host
        config.capabilities = .empty
        config.seccomp = seccomp
        config.keepAliveAfterExit = true
        config.allowRoot = options.allowRoot
        do {
            config.mounts = [try workspace.testMount(throwaway: false)]
            let container = try await RunningContainer.start(config)
            _ = await container.wait()
            defer { container.release() }
            let collector = ArtifactCollector(
                workspace: "/proc/\(container.pid)/root/workspace", outputDirectory: results.directoryPath + "/artifacts",
                budget: options.policy.artifactBudgetBytes, scanner: secrets.scanner)
            let result = await collector.collect(rules, jobSucceeded: succeeded)
            for w in result.warnings { progress.warning("artifacts: " + secrets.redact(w)) }
            let errors = result.errors.map { secrets.redact($0.description) }
            for e in errors { progress.warning("artifacts: " + e) }
            return (ArtifactSummary(files: result.files, bytes: result.bytes, errors: errors), !errors.isEmpty)
        } catch {
            let msg = secrets.redact("\(error)")
            progress.warning("artifacts: " + msg)
            return (ArtifactSummary(files: 0, bytes: 0, errors: [msg]), true)
        }
    }

    /// `junit.xml`: one case per step, plus every collected test report as its own suites.
    func writeJUnit(job: JobSpec, startedAt: Date, steps: [JUnitStepResult], reports: [JUnitParsedReport],
                    secrets: JobSecrets, results: ResultsFolder) throws {
        let report = JUnitReport.forJob(id: job.id, steps: steps, reports: reports, timestamp: startedAt)
        var writer = JUnitWriter(timestamp: startedAt)
        // The model's strings (decoded report text, step names, messages, output lines) are
        // redacted before the writer clips and escapes them: escaping `&` or cutting a long
        // text could otherwise turn a secret into a form the matcher cannot see.
        if !secrets.matcher.isEmpty { writer.redact = { secrets.redact($0) } }
        let xml = writer.render(report)
        // A second pass over the document changes nothing unless a secret survived (only
        // possible if it is the format's own markup); masking it then beats writing it.
        try results.write(Data(secrets.redact(xml).utf8), to: "junit.xml")
    }

    /// Automatic cache GC by the policy's budget, never touching a cache in use. Only the
    /// caches this job mounted are measured (`CacheGC.runAfterJob`); a job that mounted none
    /// skips the walk when the recorded sizes prove nothing is over budget.
    func afterJob(job: JobSpec?) async {
        let state = StateDirectory(root: options.stateDirectory)
        let budget = CacheGC.budget(keepBytes: options.policy.cache.keepBytes,
                                    keepPercentOfDisk: options.policy.cache.keepPercentOfDisk, state: state)
        guard let job else {
            _ = try? await CacheGC.run(state: state, budgetBytes: budget)
            return
        }
        var used = Set<CacheGC.UsedCache>()
        for step in job.steps {
            for case .cache(let c) in step.mounts { used.insert(CacheGC.UsedCache(scope: job.cacheScope, id: c.id)) }
        }
        _ = try? await CacheGC.runAfterJob(state: state, budgetBytes: budget, used: used)
    }
}
