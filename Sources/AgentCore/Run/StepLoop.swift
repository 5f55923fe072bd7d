import AgentSupport
import FoundationEssentials
import Glibc
import Sandbox

/// What the steps of a job left: the status being built, the JUnit cases and reports, and
/// how the loop ended.
struct StepsOutcome: Sendable {
    var status: JobStatus
    var junitSteps: [JUnitStepResult] = []
    var reports: [JUnitParsedReport] = []
    var jobTimedOut = false
    var cancelled = false
    var state: JobState = .running
    let started: ContinuousClock.Instant
}

extension JobRunner {
    /// Stage 3: every step in order, each in a fresh container, under the job's deadline;
    /// later steps are skipped, run or cancelled as `StepPlanner` decides.
    ///
    /// `blockedBy` (a service's failed wait) skips every step with that reason and fails
    /// the job; `services` are checked for early exits before each step.
    func runSteps(_ job: PreparedJob, started: ContinuousClock.Instant, blockedBy: String? = nil,
                  services: JobServiceGroup? = nil) async -> StepsOutcome {
        let spec = job.spec
        var status = JobStatus(jobID: spec.id, state: .running, exitCode: 0, startedAt: LogTimestamp.format(job.startedAt))
        if let image = job.image {
            status.image = ImageUse(reference: image.reference, digest: image.digest.description, owners: image.owners == nil ? "agent" : "subordinate")
        }
        status.steps = spec.steps.enumerated().map { i, s in
            var st = StepStatus(index: i + 1, name: s.name, type: s.type.rawValue, state: .pending, allowFailure: s.allowFailure)
            // The log's file name is built from the redacted name, as StepExecutor does.
            st.log = StepExecutor.logName(index: i, step: job.redact(s.name))
            return st
        }
        let clock = ContinuousClock()
        var out = StepsOutcome(status: status, started: started)
        let deadline = out.started + spec.timeout
        var planner = StepPlanner()
        if let blockedBy {
            out.status.error = blockedBy
            job.progress.warning(blockedBy)
        }
        for (i, step) in spec.steps.enumerated() {
            if Task.isCancelled { planner.markCancelled() }
            services?.reportExits(job: job)
            if !planner.deadlinePassed && clock.now >= deadline {
                planner.markDeadlinePassed()
                out.jobTimedOut = true
            }
            let decision: StepPlanner.Decision
            if let blockedBy {
                decision = planner.cancelled ? .cancel : .skip(reason: "a service is not ready: " + blockedBy)
            } else {
                decision = planner.decide(step)
            }
            switch decision {
            case .cancel:
                out.status.steps[i].state = .cancelled
                out.status.steps[i].reason = "job cancelled"
                out.junitSteps.append(JUnitStepResult(name: step.name, state: .cancelled, message: "job cancelled"))
                job.progress.send(.stepFinished(index: i, name: step.name, state: .cancelled, exitCode: nil, signal: nil, duration: .zero, lastLines: []))
                continue
            case .skip(let reason):
                out.status.steps[i].state = .skipped
                out.status.steps[i].reason = reason
                out.junitSteps.append(JUnitStepResult(name: step.name, state: .skipped, message: reason))
                job.progress.send(.stepSkipped(index: i, total: spec.steps.count, name: step.name, reason: reason))
                continue
            case .run:
                break
            }
            let run = await runStep(i, of: job, deadline: deadline, clock: clock, into: &out)
            planner.record(run.state, allowFailure: step.allowFailure)
            if run.hitJobDeadline && run.state == .timedOut {
                planner.markDeadlinePassed()
                out.jobTimedOut = true
            }
        }
        out.cancelled = planner.cancelled || Task.isCancelled
        out.state = StepPlanner.jobState(steps: out.status.steps, cancelled: out.cancelled, jobTimedOut: out.jobTimedOut)
        if blockedBy != nil && out.state == .succeeded { out.state = .failed }
        services?.reportExits(job: job)
        return out
    }

    /// One step that runs: its mounts are planned (caches held, secrets staged), the container
    /// runs, and the result goes into the status, JUnit cases, progress and `log.txt`.
    private func runStep(_ i: Int, of job: PreparedJob, deadline: ContinuousClock.Instant, clock: ContinuousClock,
                         into out: inout StepsOutcome) async -> StepRun {
        let spec = job.spec
        var step = spec.steps[i]
        // The image's User is the default user of a step that names none.
        if !step.userGiven, let u = job.imageUser { (step.uid, step.gid) = u }
        let stepStart = Date()
        out.status.steps[i].startedAt = LogTimestamp.format(stepStart)
        out.status.steps[i].state = .running
        job.progress.send(.stepStarted(index: i, total: spec.steps.count, name: step.name,
                                       command: job.redact(step.run.display), time: stepStart))
        job.jobLog.note("step \(i + 1)/\(spec.steps.count) \(step.name) started")

        let remaining = deadline - clock.now
        let stepTimeout = step.timeout.map { min($0, remaining) } ?? remaining
        let boundByJob = step.timeout.map { $0 >= remaining } ?? true
        var run: StepRun
        if let build = step.build {
            run = await BuildStepRunner(spec: build, step: step, index: i, job: job, options: options).run()
        } else { do {
            let plan = try await planMounts(step: step, index: i, job: job.admitted, secrets: job.secrets, progress: job.progress)
            defer { plan.release() }
            out.status.steps[i].caches = plan.caches
            var executor = StepExecutor(job: spec, rootfs: job.admitted.rootfs?.host, index: i, step: step, options: options,
                                        seccomp: job.seccomp, workspace: job.workspace, secrets: job.secrets,
                                        progress: job.progress, jobLog: job.jobLog, results: job.results, image: job.image)
            // A step on the job's network joins the job's pod (its services, its one stack).
            if let pod = job.pod, (step.network ?? spec.network) == pod.configuration.network {
                executor.pod = pod
                executor.hostAliases = job.hostAliases
            }
            run = await executor.run(timeout: stepTimeout, jobDeadlineBound: boundByJob,
                                     extraMounts: plan.mounts, secretEnv: plan.secretEnv)
        } catch {
            let msg = job.redact("\(error)")
            run = StepRun(state: .error, duration: .zero, reason: msg, lastLines: [msg])
        } }
        if Task.isCancelled, run.state != .succeeded { run.state = .cancelled; run.reason = "cancelled" }
        if let m = run.idMapping { out.status.idMapping = m == .subordinate ? "subordinate" : "single" }
        out.status.steps[i].state = run.state
        out.status.steps[i].exitCode = run.exitCode
        out.status.steps[i].signal = run.signal
        out.status.steps[i].reason = run.reason
        out.status.steps[i].finishedAt = LogTimestamp.format(Date())
        out.status.steps[i].durationSeconds = run.duration.seconds
        out.status.steps[i].tests = run.tests
        out.status.steps[i].processLimit = run.processLimit
        out.status.steps[i].network = StepNetwork(mode: (step.network ?? spec.network).rawValue, stack: run.networkStack)
        out.junitSteps.append(JUnitStepResult(name: step.name, state: run.state, exitCode: run.exitCode, signal: run.signal,
                                              duration: run.duration, outputLines: run.lastLines, message: run.reason))
        out.reports += run.reports
        job.progress.send(.stepFinished(index: i, name: step.name, state: run.state, exitCode: run.exitCode,
                                        signal: run.signal, duration: run.duration, lastLines: Array(run.lastLines.suffix(10))))
        if let stack = run.networkStack { job.jobLog.note("step \(step.name) network: outbound through \(stack)") }
        job.jobLog.note("step \(step.name) \(run.state.rawValue)" + (run.reason.map { ": \($0)" } ?? ""))
        return run
    }
}
