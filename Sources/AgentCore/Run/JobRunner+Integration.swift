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
