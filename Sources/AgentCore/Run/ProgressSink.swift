import AgentSupport
import FoundationEssentials
import Glibc
import Sandbox
import Synchronization

/// Fans progress events out to the renderer (if any) and remembers warnings for status.json.
final class ProgressSink: Sendable {
    private let renderer: (any ProgressRenderer)?
    private let state = Mutex<[String]>([])

    init(renderer: (any ProgressRenderer)?) {
        self.renderer = renderer
    }

    func send(_ event: ProgressEvent) {
        renderer?.handle(event)
    }

    /// A warning: shown in progress and written into status.json.
    func warning(_ text: String) {
        state.withLock { $0.append(text) }
        renderer?.handle(.warning(text))
    }

    var warnings: [String] { state.withLock { $0 } }

    func finish() { renderer?.finish() }
}

/// `log.txt`: every step's lines, in order, each with a timestamp, the step and the stream.
final class JobLog: Sendable {
    /// The open log's descriptor; -1 once closed.
    private let fd = Mutex<Int32>(-1)

    init(path: String) throws {
        let opened = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard opened >= 0 else {
            throw ResultsFolder.Failure.io("cannot write \(path)", String(cString: strerror(errno)))
        }
        fd.withLock { $0 = opened }
    }

    func append(step: String, stream: OutputChunk.Stream, line: String) {
        write("\(LogTimestamp.format(Date())) [\(step)] \(stream.rawValue) \(line)\n")
    }

    func note(_ text: String) {
        write("\(LogTimestamp.format(Date())) [agent] \(text)\n")
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

