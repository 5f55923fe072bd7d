import AgentSupport
import FoundationEssentials
import Glibc
import Images
import Sandbox
import SandboxPolicy

/// What one step's container run produced.
struct StepRun: Sendable {
    var state: StepState
    var exitCode: Int32?
    var signal: Int32?
    var duration: Duration
    var reason: String?
    var lastLines: [String]
    var idMapping: ContainerConfiguration.IDMapping?
    /// The step hit the job's deadline rather than its own timeout.
    var hitJobDeadline = false
    var tests: JUnitSummary?
    var reports: [JUnitParsedReport] = []
    var processLimit: ProcessLimit?
    /// The user-mode stack of an outbound step (`slirp4netns`).
    var networkStack: String?
}

/// Runs one step in a fresh container: builds the configuration, streams output through
/// the redactor into the step log, progress and log.txt, enforces the timeout, and for
/// test steps collects JUnit reports from inside the container before it goes away.
struct StepExecutor {
    let job: JobSpec
    /// The admitted root filesystem folder of `"image": {"rootfs": ...}`.
    let rootfs: HostPath?
    let index: Int
    let step: StepSpec
    let options: RunnerOptions
    let seccomp: SeccompPolicy
    let workspace: WorkspaceLayer
    let secrets: JobSecrets
    let progress: ProgressSink
    let jobLog: JobLog
    let results: ResultsFolder
    /// The job's image (`"image": "REF"`), pulled and unpacked.
    var image: PreparedImage? = nil
    /// The job's pod (services, or a job-level outbound network) when the step joins it.
    var pod: Pod? = nil
    /// The services' aliases, resolved to 127.0.0.1 in the step's `/etc/hosts`.
    var hostAliases: [String] = []

    /// The environment a step sees: a default PATH/HOME, then the job's env, then the
    /// step's (step wins), then env-form secrets. Nothing from the agent's environment.
    func environment(secretEnv: [String: String]) -> [String] {
        var env: [String: String] = [
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": step.uid == 0 ? "/root" : "/tmp",
            "CI": "true",
            "AGENT_JOB_ID": job.id,
            "AGENT_STEP": step.name,
        ]
        // The image's Env sits under the job's and the step's.
        for kv in image?.config.env ?? [] {
            guard let eq = kv.firstIndex(of: "=") else { continue }
            env[String(kv[..<eq])] = String(kv[kv.index(after: eq)...])
        }
        for (k, v) in job.env { env[k] = v }
        for (k, v) in step.env { env[k] = v }
        for (k, v) in secretEnv { env[k] = v }
        return env.keys.sorted().map { "\($0)=\(env[$0]!)" }
    }

    func rlimits() -> [ResourceLimit] { job.resources.containerLimits(processes: processLimit.value) }

    /// The step's process limit: the policy's `defaultPids`, or the job's `resources.pids`
    /// when that is lower (a job may only narrow it).
    ///
    /// It is RLIMIT_NPROC, set by the container's init before it execs the command. Since
    /// Linux 5.14 the kernel counts RLIMIT_NPROC per (user namespace, uid) and checks every
    /// level up to the initial namespace, each against the limit the namespace's creator
    /// had: a step's processes are counted in its own user namespace against this value,
    /// so a fork bomb in one container stops at the limit without touching another
    /// container's count. They still count towards the agent uid's total in the initial
    /// namespace (one level up the kernel charges a namespace's processes to its creator,
    /// whatever uid they run as inside, so a subordinate step uid would not help), checked
    /// against the agent's own `ulimit -u`: that limit must leave room for `defaultPids` ×
    /// concurrency plus the agent. A delegated cgroup v2 `pids.max` would not have that coupling; it is not
    /// used yet (this agent has no cgroup code; see README "Resource bounds").
    var processLimit: ProcessLimit {
        let ceiling = options.policy.defaultPids
        return ProcessLimit(kind: "rlimit", value: min(job.resources.pids ?? ceiling, ceiling))
    }

    /// A failed or timed-out step whose last lines show fork failing names the limit, so
    /// the reader knows which bound stopped it (rlimits leave no counter to ask).
    static func processLimitReason(lastLines: [String], limit: ProcessLimit) -> String? {
        let signs = ["Resource temporarily unavailable", "fork: retry", "Cannot fork", "can't fork"]
        guard lastLines.contains(where: { line in signs.contains { line.contains($0) } }) else { return nil }
        return "fork failed: the step reached its process limit (\(limit.kind == "rlimit" ? "RLIMIT_NPROC" : "pids.max") \(limit.value))"
    }

    /// The root of a step on an image or a rootfs folder. Build steps share one writable
    /// root layer over it (the job's `root-upper`, on the host); test steps see that layer
    /// read-only on top of the image. Without a layer (none made yet, or it cannot be
    /// made), the image alone under the container's private tmpfs upper.
    func treeRoot(lower: [HostPath], into c: inout ContainerConfiguration) {
        if step.type == .build, let r = try? workspace.rootLayer() {
            c.rootfs = .layersWithUpper(lower: lower, upper: HostPath(r.upper), work: HostPath(r.work))
            c.readOnlyRoot = false
        } else if let shared = workspace.existingRootUpper {
            c.rootfs = .layers([HostPath(shared)] + lower)
        } else if lower.count == 1, case .rootfs = job.image {
            c.rootfs = .directory(lower[0])
        } else {
            c.rootfs = .layers(lower)
        }
    }

    func configuration(mounts: [Mount], env: [String], timeout: Duration?) -> ContainerConfiguration {
        var c = ContainerConfiguration(command: step.run.argv)
        c.readOnlyRoot = true
        switch job.image {
        case .host: c.rootfs = .host
        case .rootfs(let path): treeRoot(lower: [rootfs ?? HostPath(path)], into: &c)
        // The agent's own snapshots (in its state folder), read-only lower layers.
        case .image: treeRoot(lower: (image?.layers ?? []).map { HostPath($0) }, into: &c)
        }
        c.mounts = mounts
        c.environment = env
        c.workingDirectory = step.workdir
        c.uid = step.uid
        c.gid = step.gid
        c.hostname = String(job.id.prefix(63))
        c.network = step.network ?? job.network
        if c.network == .outbound { c.outbound = ExecPolicyGate.outbound(options.policy.sandbox.network) }
        if let pod, pod.configuration.network == c.network {
            c.pod = pod
            c.hostAliases = hostAliases
        }
        c.rlimits = rlimits()
        c.capabilities = options.policy.capabilities
        c.seccomp = seccomp
        c.timeout = timeout
        c.killGracePeriod = options.killGrace
        c.keepAliveAfterExit = step.type == .test && !step.reports.isEmpty
        c.stdin = .null
        c.output = .pipe
        c.allowRoot = options.allowRoot
        return c
    }

    /// The mounts every step gets besides its own: `/workspace`, and sized writable tmpfs at
    /// `/tmp`, `/dev/shm` and HOME for root (`StepTmpfs`, policy `tmpfs.defaultSizeBytes`).
    func baseMounts() throws -> [Mount] {
        let workspaceMount = step.type == .test ? try workspace.testMount(throwaway: step.overlayWorkspace)
                                                : workspace.buildMount()
        return [workspaceMount] + StepTmpfs.base(uid: step.uid, options.policy.tmpfs)
    }

    /// Runs the step. Never throws: set-up failures become a step in state `error`.
    func run(timeout: Duration?, jobDeadlineBound: Bool, extraMounts: [Mount], secretEnv: [String: String]) async -> StepRun {
        let started = ContinuousClock.now
        let log: StepLogWriter
        do {
            // The file name is built from the redacted step name (status.json names it so too).
            log = try StepLogWriter(directory: results.directoryPath + "/logs", index: index, stepName: secrets.redact(step.name),
                                    capBytes: options.logCapBytes)
        } catch {
            return StepRun(state: .error, duration: .zero, reason: secrets.redact("cannot write the step log: \(error)"), lastLines: [])
        }
        let mounts: [Mount]
        do {
            mounts = try baseMounts() + StepTmpfs.sized(extraMounts, options.policy.tmpfs)
        } catch {
            return StepRun(state: .error, duration: .zero, reason: secrets.redact("\(error)"), lastLines: [])
        }
        let config = configuration(mounts: mounts, env: environment(secretEnv: secretEnv), timeout: timeout)

        let container: RunningContainer
        do {
            container = try await RunningContainer.start(config)
        } catch let e as SandboxError {
            // The overlay could not be mounted (e.g. the state folder's filesystem can't be
            // an upper layer): fall back to a private copy of the workspace and retry once.
            if workspace.mode == .overlay && (e.stage + " " + (e.detail ?? "")).contains("overlay") {
                if (try? workspace.fallBackToCopy()) != nil {
                    progress.warning("overlayfs is not available (\(e)); using a copy of the workspace")
                    return await run(timeout: timeout, jobDeadlineBound: jobDeadlineBound, extraMounts: extraMounts, secretEnv: secretEnv)
                }
            }
            let msg = secrets.redact(e.description)
            _ = log.finish()
            return StepRun(state: .error, duration: ContinuousClock.now - started, reason: msg, lastLines: [msg])
        } catch {
            let msg = secrets.redact("\(error)")
            _ = log.finish()
            return StepRun(state: .error, duration: ContinuousClock.now - started, reason: msg, lastLines: [msg])
        }

        // Drain output while waiting: the child must never block on a full pipe.
        // One redactor per stream: a secret split across two writes of one stream is still
        // caught, and the streams' bytes never interleave inside a match.
        let pump = Task { [self] in
            var outRedactor = secrets.streamRedactor()
            var errRedactor = secrets.streamRedactor()
            func record(_ bytes: [UInt8], _ stream: OutputChunk.Stream) {
                guard !bytes.isEmpty else { return }
                emit(log.append(stream: stream, bytes: bytes), stream: stream, started: started)
            }
            for await chunk in container.output {
                if chunk.stream == .stdout {
                    record(outRedactor.process(chunk.bytes), .stdout)
                } else {
                    record(errRedactor.process(chunk.bytes), .stderr)
                }
            }
            record(outRedactor.flush(), .stdout)
            record(errRedactor.flush(), .stderr)
            for (stream, line) in log.finish() { emit([line], stream: stream, started: started) }
        }
        // `wait` returns when the command exits; a kept-alive container (test reports) is
        // read and released before the output is known to be complete.
        let disk = DiskGuard(path: options.stateDirectory, reserveBytes: options.policy.minFreeDiskBytes).watch(container)
        let r = await container.wait()
        disk.cancel()
        let diskBreach = await disk.value
        var reports: (suites: [JUnitParsedReport], files: Int, error: String?)?
        if config.keepAliveAfterExit {
            reports = readReports(container: container)
            container.release()
        }
        await pump.value
        var logError: String?
        if let e = log.writeError { logError = "\(e)" }

        var run = StepRun(state: .succeeded, duration: ContinuousClock.now - started, reason: nil, lastLines: log.lastLines(), idMapping: r.idMapping)
        run.networkStack = container.networkStack ?? config.pod?.networkStack
        switch r.status {
        case .exited(let code):
            run.exitCode = code
            run.state = code == 0 ? .succeeded : .failed
        case .signaled(let sig):
            run.signal = sig
            run.state = .failed
        }
        if r.timedOut {
            run.state = .timedOut
            run.hitJobDeadline = jobDeadlineBound
            run.reason = jobDeadlineBound ? "job timed out" : "step timed out"
        }
        if let diskBreach {
            run.state = .failed
            run.reason = diskBreach
        }
        if let logError {
            progress.warning("step \(step.name): \(logError)")
        }
        if Task.isCancelled {
            run.state = .cancelled
            run.reason = "cancelled"
        }
        run.processLimit = processLimit
        if run.state == .failed || run.state == .timedOut,
           let why = Self.processLimitReason(lastLines: run.lastLines, limit: processLimit) {
            run.reason = (run.reason.map { $0 + "; " } ?? "") + why
        }
        if let reports { judge(reports, into: &run) }
        if step.type == .test && step.overlayWorkspace { workspace.discardTestLayers() }
        return run
    }

    private func emit(_ lines: [String], stream: OutputChunk.Stream, started: ContinuousClock.Instant) {
        guard !lines.isEmpty else { return }
        let elapsed = ContinuousClock.now - started
        // Batches of at most 4096 lines: a chunk of `yes` completes 65,000 lines, and the
        // events and rendered text of all of them at once were megabytes of transient memory.
        for start in stride(from: 0, to: lines.count, by: 4096) {
            let slice = lines[start..<min(start + 4096, lines.count)]
            progress.send(batch: slice.map { .stepOutput(index: index, stream: stream, line: $0, elapsed: elapsed) })
        }
        // One write for the batch (the lines one chunk of output completed).
        jobLog.append(step: step.name, stream: stream, lines: lines)
    }

    /// Test steps: reads the JUnit files the command wrote (also inside its tmpfs) through
    /// the still-alive container's root, resolved inside it, within the policy's caps.
    private func readReports(container: RunningContainer) -> (suites: [JUnitParsedReport], files: Int, error: String?) {
        do {
            let rootFD = try container.openRoot()
            defer { close(rootFD) }
            let secrets = self.secrets
            let reports = try ContainerFiles.readReports(rootFD: rootFD, rootPath: "/proc/\(container.pid)/root",
                                                         patterns: step.reports, base: "/workspace",
                                                         limits: options.policy.reports, redact: { secrets.redact($0) })
            for note in reports.skipped { progress.warning("step \(step.name): \(note)") }
            return (reports.parsed, reports.matched, nil)
        } catch {
            // The error may name a file the test created: redacted like its output.
            return ([], 0, secrets.redact("could not read reports: \(error)"))
        }
    }

    /// A test step fails when its reports have failures or errors (unless told not to).
    private func judge(_ reports: (suites: [JUnitParsedReport], files: Int, error: String?), into run: inout StepRun) {
        guard run.state == .succeeded || run.state == .failed else { return }
        if let error = reports.error {
            run.reason = error
            return
        }
        let summary = reports.suites.reduce(JUnitSummary()) { $0 + $1.summary }
        run.reports = reports.suites
        run.tests = summary
        if reports.files == 0 {
            progress.warning("step \(step.name): no test report matched \(step.reports.joined(separator: ", "))")
        }
        if step.failOnReportFailures, summary.hasFailures, run.state == .succeeded {
            run.state = .failed
            run.reason = "reports: \(summary.failures) failures, \(summary.errors) errors"
        }
    }

    /// `logs/NN-<step>.log`, the step name made safe for a file name.
    static func logName(index: Int, step: String) -> String {
        "logs/" + StepLogWriter.fileName(index: index, stepName: step)
    }
}

extension JobSpec.Resources {
    /// The rlimits of a step's or a service's container: the defaults, then the job's
    /// `nofile` and `fsize`, and `processes` as RLIMIT_NPROC.
    func containerLimits(processes: UInt64) -> [ResourceLimit] {
        var limits = ResourceLimit.defaults
        func set(_ r: ResourceLimit.Resource, _ v: UInt64?) {
            guard let v else { return }
            limits.removeAll { $0.resource == r }
            limits.append(ResourceLimit(r, v))
        }
        set(.nofile, nofile)
        set(.nproc, processes)
        set(.fsize, fsize)
        return limits
    }
}
