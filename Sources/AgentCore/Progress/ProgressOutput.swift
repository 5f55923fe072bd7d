import AgentSupport
import FoundationEssentials
import Glibc
import Synchronization

/// Where a progress renderer writes: stderr in the CLI, a buffer in tests.
public protocol ProgressOutput: Sendable {
    /// Writes `text` completely (or gives up silently: progress must never fail a job).
    func write(_ text: String)
    /// Whether this output is a terminal (decides `--progress auto`).
    var isTerminal: Bool { get }
    /// The terminal's width in columns, when it is one.
    var columns: Int? { get }
}

/// Writes to a file descriptor with `write(2)`, retrying short writes and EINTR.
/// The descriptor is borrowed: it is neither duplicated nor closed.
public struct FileDescriptorOutput: ProgressOutput {
    public let fd: Int32

    public init(fd: Int32) { self.fd = fd }

    public func write(_ text: String) {
        var text = text
        text.withUTF8 { buf in
            var offset = 0
            while offset < buf.count {
                let n = Glibc.write(fd, buf.baseAddress! + offset, buf.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    if errno == EAGAIN {
                        // A non-blocking stderr that is full: wait until it drains.
                        var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                        _ = poll(&p, 1, -1)
                        continue
                    }
                    return  // a closed stderr must not take the job down
                }
                offset += n
            }
        }
    }

    public var isTerminal: Bool { isatty(fd) == 1 }

    public var columns: Int? {
        var ws = winsize()
        guard ioctl(fd, UInt(TIOCGWINSZ), &ws) == 0, ws.ws_col > 0 else { return nil }
        return Int(ws.ws_col)
    }
}

/// Collects everything written, for tests and for callers that want the text.
public final class BufferOutput: ProgressOutput {
    private let buffer = Mutex("")
    public let isTerminal: Bool
    public let columns: Int?

    public init(isTerminal: Bool = false, columns: Int? = nil) {
        self.isTerminal = isTerminal
        self.columns = columns
    }

    public func write(_ text: String) { buffer.withLock { $0 += text } }

    /// Everything written so far.
    public var text: String { buffer.withLock { $0 } }
}

/// `--progress auto|plain|tty|json`, as BuildKit has.
public enum ProgressMode: String, Sendable, CaseIterable {
    /// `tty` when the output is a terminal (and `TERM` is not `dumb`), else `plain`.
    case auto
    case plain
    case tty
    case json

    /// What `auto` means for `output` in this environment.
    public func resolved(for output: any ProgressOutput, environment: [String: String] = ProcessInfo.processInfo.environment) -> ProgressMode {
        guard self == .auto else { return self }
        return output.isTerminal && environment["TERM"] != "dumb" ? .tty : .plain
    }
}

/// Makes the renderer for `mode` writing to `output` (`auto` resolved against it).
public func makeRenderer(mode: ProgressMode, output: any ProgressOutput) -> any ProgressRenderer {
    switch mode.resolved(for: output) {
    case .json: return JSONProgress(output: output)
    case .tty: return TTYProgress(output: output)
    case .plain, .auto: return PlainProgress(output: output)
    }
}

/// Makes the renderer for `mode` writing to a file descriptor (2 for stderr).
public func makeProgressRenderer(mode: ProgressMode, fileDescriptor: Int32) -> any ProgressRenderer {
    makeRenderer(mode: mode, output: FileDescriptorOutput(fd: fileDescriptor))
}
