import AgentSupport
import CAgentSandbox
import FoundationEssentials
import Glibc
import Sandbox

/// Runs a job's build step (`"build": {...}`): the context opened beneath the job's
/// admitted workspace by descriptor (`..` or a symlink out is refused), the Dockerfile
/// beneath the context, the secrets the step names from the job's operator-provided
/// values, caches in the job's granted scope, pushes only to registries the policy allows.
/// Its BuildKit-style progress lines are the step's output (log, progress, log.txt).
struct BuildStepRunner {
    let spec: BuildStepSpec
    let step: StepSpec
    let index: Int
    let job: PreparedJob
    let options: RunnerOptions

    /// Forwards the build's progress text, line by line, as the step's output.
    final class StepOutput: ProgressOutput, @unchecked Sendable {
        let log: StepLogWriter
        let sink: ProgressSink
        let jobLog: JobLog
        let index: Int
        let stepName: String
        let started = ContinuousClock.now
        init(log: StepLogWriter, sink: ProgressSink, jobLog: JobLog, index: Int, stepName: String) {
            self.log = log; self.sink = sink; self.jobLog = jobLog; self.index = index; self.stepName = stepName
        }
        func write(_ text: String) {
            let lines = log.append(stream: .stdout, bytes: Array(text.utf8))
            guard !lines.isEmpty else { return }
            let elapsed = ContinuousClock.now - started
            sink.send(batch: lines.map { .stepOutput(index: index, stream: .stdout, line: $0, elapsed: elapsed) })
            jobLog.append(step: stepName, stream: .stdout, lines: lines)
        }
        var isTerminal: Bool { false }
        var columns: Int? { nil }
    }

    func run() async -> StepRun {
        let started = ContinuousClock.now
        func error(_ message: String, _ state: StepState = .error, code: Int32? = nil) -> StepRun {
            let m = job.redact(message)
            return StepRun(state: state, exitCode: code, duration: ContinuousClock.now - started, reason: m, lastLines: [m])
        }
        guard let workspace = job.admitted.workspace else { return error("build step \(step.name): the job has no workspace to be the build context") }
        let ctx = agent_resolve_open_beneath(workspace.descriptor, spec.context, O_RDONLY | O_DIRECTORY)
        guard ctx >= 0 else {
            let why = errno == EXDEV ? "leads out of the workspace" : String(cString: strerror(errno))
            return error("build.context \(jsonQuoted(spec.context)): \(why)")
        }
        defer { close(ctx) }
        let df = agent_resolve_open_beneath(ctx, spec.file, O_RDONLY)
        guard df >= 0 else {
            let why = errno == EXDEV ? "leads out of the build context" : String(cString: strerror(errno))
            return error("build.file \(jsonQuoted(spec.file)): \(why)")
        }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while bytes.count <= 1 << 20 {
            let n = read(df, &buf, buf.count)
            if n <= 0 { break }
            bytes += buf[0..<n]
        }
        close(df)
        var request = BuildRequest(contextFD: ctx, contextName: spec.context, dockerfile: bytes,
                                   dockerfileName: String(spec.file.split(separator: "/").last ?? "Dockerfile"))
        request.tags = spec.tags
        request.push = spec.push
        request.target = spec.target
        request.buildArgs = spec.args
        request.noCache = spec.noCache
        request.cacheScope = job.spec.cacheScope
        var values: [String: [UInt8]] = [:]
        for id in spec.secrets { if let v = job.secrets.value(for: id) { values[id] = v } }
        request.secrets = SecretStore(values: values)
        if let e = options.environment["SOURCE_DATE_EPOCH"], let n = Int64(e) { request.sourceDateEpoch = n }

        let log: StepLogWriter
        do {
            log = try StepLogWriter(directory: job.results.directoryPath + "/logs", index: index, stepName: job.redact(step.name),
                                    capBytes: options.logCapBytes)
        } catch let e {
            return error("cannot write the step log: \(e)")
        }
        let out = StepOutput(log: log, sink: job.progress, jobLog: job.jobLog, index: index, stepName: step.name)
        // Both the job's secrets and the build's are redacted from every line.
        let progress = BuildProgress(format: .plain, output: out, redact: { [job] in job.redact($0) })
        var run: StepRun
        do throws(BuildError) {
            let executor = try BuildExecutor(request: request, policy: options.policy, state: StateDirectory(root: options.stateDirectory),
                                             progress: progress, allowRoot: options.allowRoot)
            let r = try await executor.run()
            progress.note("built \(r.manifestDigest ?? "") (\(r.ran) run, \(r.cached) cached)" + (r.tags.isEmpty ? "" : "; tagged " + r.tags.joined(separator: ", ")))
            run = StepRun(state: .succeeded, exitCode: 0, duration: ContinuousClock.now - started, reason: nil, lastLines: [])
        } catch let e {
            progress.note("error: \(e.message)")
            switch e.code {
            case .runFailed: run = error(e.message, .failed, code: 1)
            case .cancelled: run = error(e.message, .cancelled)
            case .badInput: run = error(e.message, .failed, code: 2)
            case .agent: run = error(e.message, .error, code: 3)
            }
        }
        for (stream, line) in log.finish() { job.progress.send(.stepOutput(index: index, stream: stream, line: line, elapsed: .zero)) }
        run.lastLines = log.lastLines()
        return run
    }
}
