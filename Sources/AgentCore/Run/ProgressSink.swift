import AgentSupport
import FoundationEssentials
import Glibc
import Sandbox
import Synchronization

/// Fans progress events out to the renderer (if any) and remembers warnings for status.json.
/// Every string of an event is redacted here, before any renderer formats or JSON-encodes
/// it (step names, commands and reasons come from the untrusted job file). Output lines
/// are the exception: the stream redactor has already redacted them, and they are most of
/// the traffic.
final class ProgressSink: Sendable {
    private let renderer: (any ProgressRenderer)?
    private let redact: @Sendable (String) -> String
    private let state = Mutex<[String]>([])

    init(renderer: (any ProgressRenderer)?, redact: @escaping @Sendable (String) -> String = { $0 }) {
        self.renderer = renderer
        self.redact = redact
    }

    func send(_ event: ProgressEvent) {
        renderer?.handle(redacted(event))
    }

    /// A warning: shown in progress and written into status.json (both redacted).
    func warning(_ text: String) {
        let text = redact(text)
        state.withLock { $0.append(text) }
        renderer?.handle(.warning(text))
    }

    private func redacted(_ event: ProgressEvent) -> ProgressEvent {
        switch event {
        case .jobStarted(let jobID, let count, let time):
            return .jobStarted(jobID: redact(jobID), stepCount: count, time: time)
        case .stepStarted(let index, let total, let name, let command, let time):
            return .stepStarted(index: index, total: total, name: redact(name), command: redact(command), time: time)
        case .stepOutput:
            return event
        case .stepWaiting(let index, let reason):
            return .stepWaiting(index: index, reason: redact(reason))
        case .stepFinished(let index, let name, let state, let exitCode, let signal, let duration, let lastLines):
            return .stepFinished(index: index, name: redact(name), state: state, exitCode: exitCode, signal: signal,
                                 duration: duration, lastLines: lastLines)
        case .stepSkipped(let index, let total, let name, let reason):
            return .stepSkipped(index: index, total: total, name: redact(name), reason: redact(reason))
        case .jobFinished(let jobID, let state, let exitCode, let duration):
            return .jobFinished(jobID: redact(jobID), state: state, exitCode: exitCode, duration: duration)
        case .warning(let text):
            return .warning(redact(text))
        }
    }

    var warnings: [String] { state.withLock { $0 } }

    func finish() { renderer?.finish() }
}

/// `log.txt`: every step's lines, in order, each with a timestamp, the step and the stream.
/// Notes and step names are redacted here (lines come redacted from the stream redactor).
final class JobLog: Sendable {
    /// The open log's descriptor; -1 once closed.
    private let fd = Mutex<Int32>(-1)
    private let redact: @Sendable (String) -> String
    /// Step names as shown, redacted once per step rather than once per line.
    private let shownNames = Mutex<[String: String]>([:])

    init(path: String, redact: @escaping @Sendable (String) -> String = { $0 }) throws {
        self.redact = redact
        let opened = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard opened >= 0 else {
            throw ResultsFolder.Failure.io("cannot write \(path)", String(cString: strerror(errno)))
        }
        fd.withLock { $0 = opened }
    }

    /// One output line of `step`; `line` must already be redacted.
    func append(step: String, stream: OutputChunk.Stream, line: String) {
        let shown = shownNames.withLock { names in
            if let known = names[step] { return known }
            let name = redact(step)
            names[step] = name
            return name
        }
        write("\(LogTimestamp.format(Date())) [\(shown)] \(stream.rawValue) \(line)\n")
    }

    func note(_ text: String) {
        write("\(LogTimestamp.format(Date())) [agent] \(redact(text))\n")
    }

    /// Whole lines under the lock, so concurrent steps' lines never interleave.
    private func write(_ text: String) {
        fd.withLock { if $0 >= 0 { writeAll($0, text.utf8) } }
    }

    func close() {
        fd.withLock {
            if $0 >= 0 { Glibc.close($0) }
            $0 = -1
        }
    }
}

