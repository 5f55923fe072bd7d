import Foundation
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
    private let handle = Mutex<FileHandle?>(nil)

    init(path: String) throws {
        FileManager.default.createFile(atPath: path, contents: nil)
        guard let h = FileHandle(forWritingAtPath: path) else {
            throw ResultsFolder.Failure.io("cannot write \(path)", String(cString: strerror(errno)))
        }
        handle.withLock { $0 = h }
    }

    func append(step: String, stream: OutputChunk.Stream, line: String) {
        let text = "\(LogTimestamp.format(Date())) [\(step)] \(stream.rawValue) \(line)\n"
        handle.withLock { try? $0?.write(contentsOf: Data(text.utf8)) }
    }

    func note(_ text: String) {
        let line = "\(LogTimestamp.format(Date())) [agent] \(text)\n"
        handle.withLock { try? $0?.write(contentsOf: Data(line.utf8)) }
    }

    func close() {
        handle.withLock {
            try? $0?.close()
            $0 = nil
        }
    }
}

