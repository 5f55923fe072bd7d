import Foundation
import Sandbox
import SandboxPolicy

/// The mounts one step gets besides `/workspace`, `/tmp` and HOME.
struct StepMountPlan {
    var mounts: [Mount] = []
    var secretEnv: [String: String] = [:]
    var caches: [CacheUse] = []
    var leases: [any MountLease] = []

    func release() {
        for l in leases { l.release() }
    }
}

extension JobRunner {
    /// Caches, volumes, binds and tmpfs from the step's `mounts` (the cache store may make
    /// the step wait for a `locked` cache; the wait shows in progress), secrets as files on
    /// a private tmpfs or as env, and a test step's `tmpfs` list.
    func planMounts(step: StepSpec, index: Int, job: JobSpec, secrets: SecretStore, progress: ProgressSink) async throws -> StepMountPlan {
        var out = StepMountPlan()
        let planned = try await MountPlanner.plan(
            step: step, job: job, stateDirectory: options.stateDirectory,
            allowedBindSources: options.policy.allowedBindSources,
            onWait: { reason in progress.send(.stepWaiting(index: index, reason: reason)) })
        out.mounts = planned.mounts
        out.leases = planned.leases
        out.caches = planned.caches
        for secret in planned.secrets {
            guard let value = secrets.value(for: secret.id) else {
                if secret.required {
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
        for t in step.tmpfs {
            if case .tmpfs(let target, let size, let mode) = t {
                out.mounts.append(.tmpfs(target, size: size, mode: mode))
            }
        }
        return out
    }

    /// Artifacts are read through a short-lived container that mounts the job's workspace
    /// read-only, so the collector sees exactly what the steps saw (the overlay merged),
    /// through `/proc/PID/root` and never outside it.
    func collectArtifacts(job: JobSpec, state: JobState, workspace: WorkspaceLayer, results: ResultsFolder,
                          secrets: SecretStore, progress: ProgressSink) async -> (summary: ArtifactSummary?, failed: Bool) {
        let rules = job.artifacts.filter { rule in
            switch rule.when {
            case .always: return true
            case .onSuccess: return state == .succeeded
            case .onFailure: return state != .succeeded
            }
        }
        guard !rules.isEmpty else { return (nil, false) }
        var config = ContainerConfiguration(command: ["/bin/true"])
        config.rootfs = .host
        config.capabilities = .empty
        config.seccomp = options.policy.seccomp
        config.keepAliveAfterExit = true
        config.allowRoot = options.allowRoot
        do {
            config.mounts = [try workspace.testMount(throwaway: false)]
            let container = try await RunningContainer.start(config)
            _ = await container.wait()
            defer { container.release() }
            let root = "/proc/\(container.pid)/root/workspace"
            let result = try ArtifactCollector.collect(
                rules: rules, workspace: root, destination: results.workingPath + "/artifacts",
                budgetBytes: options.policy.artifactBudgetBytes, scanner: secrets.scanner)
            for w in result.warnings { progress.warning(secrets.redact(w)) }
            let errors = result.errors.map { secrets.redact($0) }
            for e in errors { progress.warning("artifacts: " + e) }
            return (ArtifactSummary(files: result.fileCount, bytes: result.totalBytes, errors: errors), !errors.isEmpty)
        } catch {
            let msg = secrets.redact("\(error)")
            progress.warning("artifacts: " + msg)
            return (ArtifactSummary(files: 0, bytes: 0, errors: [msg]), true)
        }
    }

    /// `junit.xml`: one case per step, plus every collected test report as its own suites.
    func writeJUnit(job: JobSpec, status: JobStatus, lastLines: [Int: [String]], reports: [JUnitSuite],
                    secrets: SecretStore, results: ResultsFolder) throws {
        let cases = status.steps.enumerated().map { i, s in
            JUnitWriter.stepCase(jobID: job.id, step: s, lastLines: (lastLines[i] ?? []).map { secrets.redact($0) })
        }
        let xml = JUnitWriter.document(jobID: job.id, startedAt: status.startedAt, stepCases: cases, reports: reports)
        try results.write(Data(secrets.redact(xml).utf8), to: "junit.xml")
    }

    /// Automatic cache GC by the policy's budget, never touching a cache in use.
    func afterJob() async {
        await CacheGC.runAfterJob(stateDirectory: options.stateDirectory, policy: options.policy)
    }
}
