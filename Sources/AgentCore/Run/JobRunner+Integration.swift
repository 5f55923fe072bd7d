import AgentSupport
import FoundationEssentials
import Glibc
import Sandbox
import SandboxPolicy

extension JobRunner {
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

    /// Automatic cache GC by the policy's budget, never touching a cache in use. A job that
    /// mounted no cache skips the measuring walk when the recorded sizes prove nothing is over
    /// budget (`CacheGC.runIfNeeded`); a job that used a cache always measures.
    func afterJob(job: JobSpec?) async {
        let state = StateDirectory(root: options.stateDirectory)
        let budget = CacheGC.budget(keepBytes: options.policy.cache.keepBytes,
                                    keepPercentOfDisk: options.policy.cache.keepPercentOfDisk, state: state)
        let usedCache = job.map { j in
            j.steps.contains { s in s.mounts.contains { if case .cache = $0 { return true } else { return false } } }
        } ?? true
        if usedCache {
            _ = try? await CacheGC.run(state: state, budgetBytes: budget)
        } else {
            _ = try? await CacheGC.runIfNeeded(state: state, budgetBytes: budget)
        }
    }
}
