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

    /// Events in order, handed to the renderer at once (see `ProgressRenderer.handle(batch:)`).
    func send(batch events: [ProgressEvent]) {
        guard let renderer, !events.isEmpty else { return }
        renderer.handle(batch: events.map(redacted))
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
        case .service(let alias, let message):
            return .service(alias: redact(alias), message: redact(message))
        }
    }

    var warnings: [String] { state.withLock { $0 } }

    func finish() { renderer?.finish() }
}

/// `log.txt`: every step's lines, in order, each with a timestamp, the step and the stream.
/// Notes and step names are redacted here (lines come redacted from the stream redactor).
///
/// Lines come in batches (what one chunk of output completed): one clock reading, one
/// formatted timestamp and one write(2) per batch, not per line. A batch is written whole
/// under the lock, so concurrent steps' lines never interleave.
final class JobLog: Sendable {
    private struct State {
        /// The open log's descriptor; -1 once closed.
        var fd: Int32 = -1
        var stamps = TimestampCache()
        var buffer: [UInt8] = []
    }
    private let state = Mutex(State())
    private let redact: @Sendable (String) -> String
    /// Step names as shown, redacted once per step rather than once per line.
    private let shownNames = Mutex<[String: String]>([:])
    /// The buffer is written out when it grows past this (a batch can be large).
    static let flushBytes = 256 << 10

    init(path: String, redact: @escaping @Sendable (String) -> String = { $0 }) throws {
        self.redact = redact
        let opened = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard opened >= 0 else {
            throw ResultsFolder.Failure.io("cannot write \(path)", String(cString: strerror(errno)))
        }
        state.withLock { $0.fd = opened }
    }

    /// One output line of `step`; `line` must already be redacted.
    func append(step: String, stream: OutputChunk.Stream, line: String) {
        append(step: step, stream: stream, lines: [line])
    }

    /// Output lines of `step`, all stamped with the same time; they must already be redacted.
    func append(step: String, stream: OutputChunk.Stream, lines: [String]) {
        guard !lines.isEmpty else { return }
        let shown = shownNames.withLock { names in
            if let known = names[step] { return known }
            let name = redact(step)
            names[step] = name
            return name
        }
        let now = Date()
        state.withLock { s in
            guard s.fd >= 0 else { return }
            var stamp: [UInt8] = []
            s.stamps.append(now, to: &stamp)
            // `<stamp> [<step>] out ` is the same for every line of the batch.
            stamp.append(contentsOf: " [\(shown)] \(stream.rawValue) ".utf8)
            for var line in lines {
                s.buffer.append(contentsOf: stamp)
                line.withUTF8 { s.buffer.append(contentsOf: $0) }
                s.buffer.append(0x0A)
                if s.buffer.count >= Self.flushBytes { Self.flush(&s) }
            }
            Self.flush(&s)
        }
    }

    func note(_ text: String) {
        let line = "\(LogTimestamp.format(Date())) [agent] \(redact(text))\n"
        state.withLock { s in
            guard s.fd >= 0 else { return }
            s.buffer.append(contentsOf: line.utf8)
            Self.flush(&s)
        }
    }

    private static func flush(_ s: inout State) {
        guard !s.buffer.isEmpty else { return }
        writeAll(s.fd, s.buffer)
        s.buffer.removeAll(keepingCapacity: s.buffer.count <= flushBytes * 2)
    }

    func close() {
        state.withLock { s in
            if s.fd >= 0 { Glibc.close(s.fd) }
            s.fd = -1
        }
    }
}
