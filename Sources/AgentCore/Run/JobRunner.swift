import AgentSupport
import FoundationEssentials
import Glibc
import Sandbox
import SandboxPolicy

/// Runs jobs: parses and checks the job, resolves secrets, runs each step in a fresh
/// container over the job's copy-on-write workspace, collects test reports and
/// artifacts, and writes the results folder atomically.
public final class JobRunner: JobExecuting, Sendable {
    public let options: RunnerOptions
    private let makeRenderer: @Sendable () -> (any ProgressRenderer)?

    /// `renderer` is called once per job for a fresh progress renderer (nil: no progress).
    public init(options: RunnerOptions, renderer: @escaping @Sendable () -> (any ProgressRenderer)? = { nil }) {
        self.options = options
        self.makeRenderer = renderer
    }

    public func execute(jobFile: String, outputDirectory: String) async -> JobOutcome {
        await run(jobFile: jobFile, outputDirectory: outputDirectory)
    }

    /// Runs the job at `jobFile`. `outputDirectory` defaults to `./results/<job-id>`.
    public func run(jobFile: String, outputDirectory: String? = nil) async -> JobOutcome {
        let startedAt = Date()
        // 1. Everything that can be wrong with the input is found before anything runs.
        let job: JobSpec
        do {
            job = try ScopeGrant.apply(options.cacheScope, to: JobParser.parse(fileAt: jobFile, displayName: jobFile), file: jobFile)
        } catch {
            return invalid(message: "\(error)", jobID: fallbackID(jobFile), output: outputDirectory, startedAt: startedAt)
        }
        let secrets: JobSecrets
        let admitted: AdmittedJob
        do {
            admitted = try Admission.admit(job, file: jobFile, grant: grant())
            let flags = try options.secretFlags.map { try SecretSourceFlag(parsing: $0) }
            secrets = JobSecrets(try SecretStore.resolve(
                job: job, cliSecrets: flags, policySecrets: options.policy.secrets, environment: options.environment,
                cwd: options.workingDirectory, maxBytes: Int(options.policy.maxSecretBytes)))
        } catch {
            return invalid(message: "\(error)", jobID: job.id, output: outputDirectory, startedAt: startedAt)
        }

        let seccomp: SeccompPolicy
        do {
            seccomp = try options.policy.seccompPolicy()
        } catch {
            return JobOutcome(exitCode: 3, state: .error, resultsPath: nil, message: "\(error)")
        }

        // 2. The results folder (written beside, renamed at the end) and the workspace layer.
        let results: ResultsFolder
        let workspace: WorkspaceLayer
        do {
            results = try makeResultsFolder(outputDirectory, jobID: job.id)
        } catch let e as ResultsFolder.Failure {
            if e.isUsageError {
                return JobOutcome(exitCode: 2, state: .error, resultsPath: nil, message: e.description)
            }
            return JobOutcome(exitCode: 3, state: .error, resultsPath: nil, message: e.description)
        } catch {
            return JobOutcome(exitCode: 3, state: .error, resultsPath: nil, message: "\(error)")
        }
        // Layers left by an agent that was killed (their lock is free) go first.
        let stale = await WorkspaceLayer.removeStale(stateDirectory: options.stateDirectory)
        do {
            workspace = try WorkspaceLayer(stateDirectory: options.stateDirectory, jobID: job.id, source: admitted.workspace)
        } catch {
            results.discard()
            return JobOutcome(exitCode: 3, state: .error, resultsPath: nil,
                              message: secrets.redact("cannot create the job's workspace layer: \(error)"))
        }

        let redact: @Sendable (String) -> String = { secrets.redact($0) }
        let progress = ProgressSink(renderer: makeRenderer(), redact: redact)
        for w in secrets.warnings { progress.warning(w) }
        if job.resources.memory != nil {
            progress.warning("resources.memory cannot be enforced on this host (cgroups are not delegated to the agent); only rlimits apply")
        }
        let jobLog: JobLog
        do {
            jobLog = try JobLog(path: results.directoryPath + "/log.txt", redact: redact)
        } catch {
            results.discard()
            await workspace.remove()
            return JobOutcome(exitCode: 3, state: .error, resultsPath: nil, message: "\(error)")
        }
        for dir in stale { jobLog.note("removed \(dir): the workspace layer of an agent that is gone") }

        var status = JobStatus(jobID: job.id, state: .running, exitCode: 0, startedAt: LogTimestamp.format(startedAt))
        status.steps = job.steps.enumerated().map { i, s in
            var st = StepStatus(index: i + 1, name: s.name, type: s.type.rawValue, state: .pending, allowFailure: s.allowFailure)
            // The log's file name is built from the redacted name, as StepExecutor does.
            st.log = StepExecutor.logName(index: i, step: secrets.redact(s.name))
            return st
        }
        progress.send(.jobStarted(jobID: job.id, stepCount: job.steps.count, time: startedAt))

        // 3. The steps.
        let clock = ContinuousClock()
        let jobStart = clock.now
        let deadline = jobStart + job.timeout
        var planner = StepPlanner()
        var junitSteps: [JUnitStepResult] = []
        var reports: [JUnitParsedReport] = []
        var jobTimedOut = false
        for (i, step) in job.steps.enumerated() {
            if Task.isCancelled { planner.markCancelled() }
            if !planner.deadlinePassed && clock.now >= deadline {
                planner.markDeadlinePassed()
                jobTimedOut = true
            }
            switch planner.decide(step) {
            case .cancel:
                status.steps[i].state = .cancelled
                status.steps[i].reason = "job cancelled"
                junitSteps.append(JUnitStepResult(name: step.name, state: .cancelled, message: "job cancelled"))
                progress.send(.stepFinished(index: i, name: step.name, state: .cancelled, exitCode: nil, signal: nil, duration: .zero, lastLines: []))
                continue
            case .skip(let reason):
                status.steps[i].state = .skipped
                status.steps[i].reason = reason
                junitSteps.append(JUnitStepResult(name: step.name, state: .skipped, message: reason))
                progress.send(.stepSkipped(index: i, total: job.steps.count, name: step.name, reason: reason))
                continue
            case .run:
                break
            }
            let stepStart = Date()
            status.steps[i].startedAt = LogTimestamp.format(stepStart)
            status.steps[i].state = .running
            progress.send(.stepStarted(index: i, total: job.steps.count, name: step.name,
                                       command: secrets.redact(step.run.display), time: stepStart))
            jobLog.note("step \(i + 1)/\(job.steps.count) \(step.name) started")

            let remaining = deadline - clock.now
            let stepTimeout = step.timeout.map { min($0, remaining) } ?? remaining
            let boundByJob = step.timeout.map { $0 >= remaining } ?? true

            var run: StepRun
            do {
                let plan = try await planMounts(step: step, index: i, job: admitted, secrets: secrets, progress: progress)
                defer { plan.release() }
                status.steps[i].caches = plan.caches
                let executor = StepExecutor(job: job, rootfs: admitted.rootfs?.host, index: i, step: step, options: options, seccomp: seccomp,
                                            workspace: workspace, secrets: secrets, progress: progress,
                                            jobLog: jobLog, results: results)
                run = await executor.run(timeout: stepTimeout, jobDeadlineBound: boundByJob,
                                         extraMounts: plan.mounts, secretEnv: plan.secretEnv)
            } catch {
                let msg = secrets.redact("\(error)")
                run = StepRun(state: .error, duration: .zero, reason: msg, lastLines: [msg])
            }
            if Task.isCancelled, run.state != .succeeded { run.state = .cancelled; run.reason = "cancelled" }
            if let m = run.idMapping { status.idMapping = m == .subordinate ? "subordinate" : "single" }
            status.steps[i].state = run.state
            status.steps[i].exitCode = run.exitCode
            status.steps[i].signal = run.signal
            status.steps[i].reason = run.reason
            status.steps[i].finishedAt = LogTimestamp.format(Date())
            status.steps[i].durationSeconds = run.duration.seconds
            status.steps[i].tests = run.tests
            junitSteps.append(JUnitStepResult(name: step.name, state: run.state, exitCode: run.exitCode, signal: run.signal,
                                              duration: run.duration, outputLines: run.lastLines, message: run.reason))
            reports += run.reports
            progress.send(.stepFinished(index: i, name: step.name, state: run.state, exitCode: run.exitCode,
                                        signal: run.signal, duration: run.duration, lastLines: Array(run.lastLines.suffix(10))))
            jobLog.note("step \(step.name) \(run.state.rawValue)" + (run.reason.map { ": \($0)" } ?? ""))
            planner.record(run.state, allowFailure: step.allowFailure)
            if run.hitJobDeadline && run.state == .timedOut {
                planner.markDeadlinePassed()
                jobTimedOut = true
            }
        }

        // 4. Reports, artifacts, status; then the folder appears in one rename.
        let cancelled = planner.cancelled || Task.isCancelled
        var state = StepPlanner.jobState(steps: status.steps, cancelled: cancelled, jobTimedOut: jobTimedOut)
        if !cancelled {
            let artifacts = await collectArtifacts(job: job, state: state, workspace: workspace, results: results,
                                                   secrets: secrets, seccomp: seccomp, progress: progress)
            status.artifacts = artifacts.summary
            if artifacts.failed, state == .succeeded { state = .failed }
        }
        status.state = state
        status.exitCode = StepPlanner.exitCode(for: state)
        let finished = Date()
        status.finishedAt = LogTimestamp.format(finished)
        status.durationSeconds = (clock.now - jobStart).seconds
        status.warnings = progress.warnings
        if !reports.isEmpty { status.tests = reports.reduce(JUnitSummary()) { $0 + $1.summary } }
        progress.send(.jobFinished(jobID: job.id, state: state, exitCode: status.exitCode, duration: clock.now - jobStart))
        progress.finish()
        jobLog.close()

        var commitError: String?
        do {
            try writeJUnit(job: job, startedAt: startedAt, steps: junitSteps, reports: reports, secrets: secrets, results: results)
            try results.write(try encode(status, secrets: secrets), to: "status.json")
            try results.commit()
        } catch {
            commitError = "cannot write results: \(error)"
            results.discard()
        }
        await workspace.remove()
        await afterJob(job: job)
        // The queue writes these messages into its own status files: redacted like the rest.
        if let commitError {
            return JobOutcome(exitCode: 3, state: .error, resultsPath: nil, message: secrets.redact(commitError))
        }
        let message = state == .error ? status.steps.first { $0.state == .error }?.reason.map(redact) : nil
        return JobOutcome(exitCode: status.exitCode, state: state, resultsPath: results.finalPath, message: message)
    }

    /// Exit 2 for invalid input; the queue also gets a results folder explaining why.
    private func invalid(message: String, jobID: String, output: String?, startedAt: Date) -> JobOutcome {
        guard options.writeResultsForInvalidJobs else {
            return JobOutcome(exitCode: 2, state: .error, resultsPath: nil, message: message)
        }
        let path = output ?? (options.workingDirectory + "/results/" + jobID)
        var status = JobStatus(jobID: jobID, state: .error, exitCode: 2, startedAt: LogTimestamp.format(startedAt))
        status.error = message
        status.finishedAt = LogTimestamp.format(Date())
        if let folder = try? makeResultsFolder(output, jobID: jobID) {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            if let data = try? enc.encode(status), (try? folder.write(data, to: "status.json")) != nil, (try? folder.commit()) != nil {
                return JobOutcome(exitCode: 2, state: .error, resultsPath: path, message: message)
            }
            folder.discard()
        }
        return JobOutcome(exitCode: 2, state: .error, resultsPath: nil, message: message)
    }

    /// `--output` (or the queue's folder) is the operator's path: symlinks above its last
    /// component are followed. The default `./results/<job-id>` is not: a `results` symlink
    /// in the working directory (which a job's checkout could plant) is refused.
    private func makeResultsFolder(_ output: String?, jobID: String) throws -> ResultsFolder {
        if let output { return try ResultsFolder.create(at: output, force: options.force) }
        return try ResultsFolder.create(under: options.workingDirectory, relative: "results/" + jobID, force: options.force)
    }

    private func fallbackID(_ file: String) -> String {
        let base = URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent
        let ok = base.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }
        return ok && !base.isEmpty ? String(base.prefix(128)) : "invalid-job"
    }

    /// What the operator grants this runner's jobs: the policy, `--workspace-root`, and the
    /// agent's own folders (home, state, binary, queue), which no job may reach.
    func grant() -> OperatorGrant {
        OperatorGrant(policy: options.policy, workspaceRoots: options.workspaceRoots,
                      protected: ProtectedPaths.current(stateDirectory: options.stateDirectory,
                                                        queueDirectory: options.queueDirectory))
    }

    /// status.json: the model's strings are redacted first, then encoded, so a secret with
    /// `"`, `\`, a control character or non-ASCII text never reaches the matcher only in its
    /// JSON-escaped form.
    func encode(_ status: JobStatus, secrets: JobSecrets) throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let raw = try enc.encode(status.redacted(by: secrets.redact))
        // A second pass over the text changes nothing unless a secret survived (only if it
        // is the format's own syntax, or escaping spelled one); masking it beats writing it.
        return Data(secrets.redact(String(decoding: raw, as: UTF8.self)).utf8)
    }
}
