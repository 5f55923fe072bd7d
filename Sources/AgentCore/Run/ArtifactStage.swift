import AgentSupport
import FoundationEssentials
import Glibc
import Sandbox
import SandboxPolicy

extension JobRunner {
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
}
