import AgentSupport
import FoundationEssentials
import Glibc
import Sandbox

extension JobRunner {
    /// Stage 4: artifacts (unless the job was cancelled) and the final status: state, exit
    /// code, times, warnings and the test totals.
    func collect(_ job: PreparedJob, _ steps: inout StepsOutcome) async {
        if !steps.cancelled {
            let artifacts = await collectArtifacts(job: job.spec, state: steps.state, workspace: job.workspace,
                                                   results: job.results, secrets: job.secrets, seccomp: job.seccomp,
                                                   progress: job.progress)
            steps.status.artifacts = artifacts.summary
            if artifacts.failed, steps.state == .succeeded { steps.state = .failed }
        }
        let elapsed = ContinuousClock.now - steps.started
        steps.status.state = steps.state
        steps.status.exitCode = StepPlanner.exitCode(for: steps.state)
        steps.status.finishedAt = LogTimestamp.format(Date())
        steps.status.durationSeconds = elapsed.seconds
        steps.status.warnings = job.progress.warnings
        if !steps.reports.isEmpty { steps.status.tests = steps.reports.reduce(JUnitSummary()) { $0 + $1.summary } }
        job.progress.send(.jobFinished(jobID: job.spec.id, state: steps.state, exitCode: steps.status.exitCode, duration: elapsed))
        job.progress.finish()
        job.jobLog.close()
    }

    /// Stage 5: junit.xml and status.json into the working folder, which then appears in one
    /// rename; the workspace layer goes, and the cache GC runs.
    func publish(_ job: PreparedJob, _ steps: StepsOutcome) async -> JobOutcome {
        var commitError: String?
        do {
            try writeJUnit(job: job.spec, startedAt: job.startedAt, steps: steps.junitSteps, reports: steps.reports,
                           secrets: job.secrets, results: job.results)
            try job.results.write(try encode(steps.status, secrets: job.secrets), to: "status.json")
            try job.results.commit()
        } catch {
            commitError = "cannot write results: \(error)"
            job.results.discard()
        }
        await job.workspace.remove()
        await afterJob(job: job.spec)
        // The queue writes these messages into its own status files: redacted like the rest.
        if let commitError {
            return JobOutcome(exitCode: 3, state: .error, resultsPath: nil, message: job.redact(commitError))
        }
        let message = steps.state == .error ? steps.status.steps.first { $0.state == .error }?.reason.map(job.redact) : nil
        return JobOutcome(exitCode: steps.status.exitCode, state: steps.state, resultsPath: job.results.finalPath, message: message)
    }
}
