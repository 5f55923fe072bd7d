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
    let makeRenderer: @Sendable () -> (any ProgressRenderer)?

    /// `renderer` is called once per job for a fresh progress renderer (nil: no progress).
    public init(options: RunnerOptions, renderer: @escaping @Sendable () -> (any ProgressRenderer)? = { nil }) {
        self.options = options
        self.makeRenderer = renderer
    }

    public func execute(jobFile: String, outputDirectory: String) async -> JobOutcome {
        await run(jobFile: jobFile, outputDirectory: outputDirectory)
    }

    /// Runs the job at `jobFile`. `outputDirectory` defaults to `./results/<job-id>`.
    ///
    /// Five stages, each in a function of its own: admit (parse, then the operator's grant:
    /// nothing runs and nothing is written for a refused job), prepare (results folder,
    /// workspace layer, progress, log), run the steps, collect (artifacts, status) and
    /// publish (junit.xml, status.json, one rename).
    public func run(jobFile: String, outputDirectory: String? = nil) async -> JobOutcome {
        let startedAt = Date()
        let admitted: AdmittedJob
        switch admit(jobFile) {
        case .success(let a): admitted = a
        case .failure(let refusal):
            return invalid(message: refusal.message, jobID: refusal.jobID, output: outputDirectory, startedAt: startedAt)
        }
        let job: PreparedJob
        switch await prepare(admitted, output: outputDirectory, startedAt: startedAt) {
        case .success(let p): job = p
        case .failure(let failed): return failed.outcome
        }
        // The services start before the first step and stop after the last, whatever
        // happened (failure, cancel, timeout); the pod is closed at the very end.
        defer { job.pod?.close() }
        // The job's clock (its timeout) starts before its services do.
        let clock = ContinuousClock()
        let started = clock.now
        job.progress.send(.jobStarted(jobID: job.spec.id, stepCount: job.spec.steps.count, time: job.startedAt))
        let group = serviceGroup(job)
        var blocked: String?
        var cancelledDuringStart = false
        if let group {
            blocked = await group.start(job: job)
            if blocked == nil {
                (blocked, cancelledDuringStart) = await group.waitForHealth(job: job, deadline: started + job.spec.timeout)
            }
        }
        var steps = await runSteps(job, started: started, blockedBy: blocked, services: group)
        if let group {
            await group.stop(job: job)
            steps.status.services = group.status
        }
        if cancelledDuringStart { steps.cancelled = true; steps.state = .cancelled }
        await collect(job, &steps)
        return await publish(job, steps)
    }

    /// The job's services in its pod, nil for a job without services.
    func serviceGroup(_ job: PreparedJob) -> JobServiceGroup? {
        guard !job.services.isEmpty, let pod = job.pod else { return nil }
        let factory = ServiceContainerFactory(job: job.spec, options: options, seccomp: job.seccomp, pod: pod,
                                              hostAliases: job.hostAliases, layerRoot: job.workspace.root)
        return JobServiceGroup(factory: factory, services: job.services, logName: JobServiceGroup.logName)
    }

    /// Why a job was not admitted: the message (file, JSON path, policy key) and the id to
    /// file it under.
    struct Refusal: Error {
        var message: String
        var jobID: String
    }

    /// Stage 1: the job file is parsed, then granted by `Admission` from the operator's side.
    func admit(_ jobFile: String) -> Result<AdmittedJob, Refusal> {
        let job: JobSpec
        do {
            job = try JobParser.parse(fileAt: jobFile, displayName: jobFile)
        } catch {
            return .failure(Refusal(message: "\(error)", jobID: fallbackID(jobFile)))
        }
        do {
            return .success(try Admission.admit(job, file: jobFile, grant: try grant()))
        } catch {
            return .failure(Refusal(message: "\(error)", jobID: job.id))
        }
    }

    /// Exit 2 for invalid input; the queue also gets a results folder explaining why.
    func invalid(message: String, jobID: String, output: String?, startedAt: Date) -> JobOutcome {
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
    func makeResultsFolder(_ output: String?, jobID: String) throws -> ResultsFolder {
        if let output { return try ResultsFolder.create(at: output, force: options.force) }
        return try ResultsFolder.create(under: options.workingDirectory, relative: "results/" + jobID, force: options.force)
    }

    private func fallbackID(_ file: String) -> String {
        let base = URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent
        let ok = base.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }
        return ok && !base.isEmpty ? String(base.prefix(128)) : "invalid-job"
    }

    /// What the operator grants this runner's jobs: the policy, `--workspace-root`,
    /// `--cache-scope`, `--secret`, and the agent's own folders (home, state, binary, queue),
    /// which no job may reach.
    func grant() throws -> OperatorGrant {
        var g = OperatorGrant(policy: options.policy, workspaceRoots: options.workspaceRoots,
                              protected: ProtectedPaths.current(stateDirectory: options.stateDirectory,
                                                                queueDirectory: options.queueDirectory))
        g.cacheScope = options.cacheScope
        g.secretFlags = try options.secretFlags.map { try SecretSourceFlag(parsing: $0) }
        g.environment = options.environment
        g.workingDirectory = options.workingDirectory
        return g
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
