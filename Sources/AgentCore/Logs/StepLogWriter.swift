import AgentSupport
import CAgentSys
import FoundationEssentials
import Glibc
import Sandbox
import Synchronization

/// Why a step log could not be written (an agent error, not a step failure).
public struct StepLogError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var operation: String
    public var errno: Int32
    public var description: String { "step log \(path): \(operation) failed: \(String(cString: strerror(errno)))" }
}

/// Writes one step's output to `logs/NN-<step>.log`.
///
/// Takes the (already redacted) byte chunks of stdout and stderr as they arrive, splits each
/// stream into lines on its own (a partial line waits for the rest of its stream; a line over
/// `maxLineBytes` is cut into pieces; a trailing `\r` is removed), and writes every line as
/// `2026-11-26T21:30:00.123Z out <line>`. It returns the lines (invalid UTF-8 replaced) so the
/// caller can feed `log.txt` and progress output, and keeps the last `ringCapacity` lines.
///
/// The file is capped at `capBytes`: once the next line does not fit, nothing more is written
/// (the log stays a prefix of the output) and no more lines are returned, so `log.txt` and
/// progress stay bounded too; input is still consumed and counted, the ring of last lines
/// keeps moving (the end of the output is what explains a failure), and `finish()` writes and
/// returns one `[log truncated: N bytes dropped]` line. N counts output bytes (newlines
/// included), not the timestamps that would have been added.
///
/// Writing never throws: a failed write (disk full) is kept in `writeError`, and the writer
/// goes on consuming input so the step never blocks on its pipe.
public final class StepLogWriter: Sendable {
    public static let defaultCapBytes = 16 << 20
    public static let maxLineBytes = 64 << 10
    public static let ringCapacity = 100

    private struct State {
        var fd: Int32
        var partial: [[UInt8]] = [[], []]  // by stream: out, err
        var written = 0
        var dropped = 0
        var full = false
        /// The last lines as bytes, decoded only when asked for: a step that prints a
        /// billion short lines past the cap must not build a String for each.
        var ring: [[UInt8]] = []
        var ringHead = 0
        var stamps = TimestampCache()
        var buffer: [UInt8] = []
        var finished = false
        var writeError: StepLogError?
    }

    /// The log file's path.
    public let path: String
    private let capBytes: Int
    private let clock: @Sendable () -> Date
    private let state: Mutex<State>

    /// Creates (or truncates) `directory/NN-<name>.log` for the step at 0-based `index`.
    public convenience init(directory: String, index: Int, stepName: String, capBytes: Int = defaultCapBytes,
                            clock: @escaping @Sendable () -> Date = { Date() }) throws {
        try self.init(path: directory + "/" + Self.fileName(index: index, stepName: stepName),
                      capBytes: capBytes, clock: clock)
    }

    /// Creates (or truncates) the log file at `path`. It is opened with `O_NOFOLLOW`: a symlink
    /// planted there is refused, not followed. `clock` stamps the lines (injectable for tests).
    public init(path: String, capBytes: Int = defaultCapBytes, clock: @escaping @Sendable () -> Date = { Date() }) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw StepLogError(path: path, operation: "open", errno: errno) }
        self.path = path
        self.capBytes = capBytes
        self.clock = clock
        self.state = Mutex(State(fd: fd))
    }

    deinit {
        state.withLock { s in
            if !s.finished { close(s.fd) }
        }
    }

    /// `01-build.log` for index 0: the 1-based number (two digits at least) and the name with
    /// everything but `A-Z a-z 0-9 . _ -` replaced by `_`, cut to 64 bytes.
    public static func fileName(index: Int, stepName: String) -> String {
        let number = index + 1 < 10 ? "0\(index + 1)" : "\(index + 1)"
        var safe = String(decoding: stepName.utf8.prefix(64).map { b -> UInt8 in
            let ok = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                || b == 0x2E || b == 0x5F || b == 0x2D
            return ok ? b : 0x5F
        }, as: UTF8.self)
        if safe.isEmpty { safe = "step" }
        return "\(number)-\(safe).log"
    }

    /// Appends a chunk of one stream; returns the lines it completed.
    @discardableResult
    public func append(_ chunk: OutputChunk) -> [String] {
        append(stream: chunk.stream, bytes: chunk.bytes)
    }

    /// Appends bytes of one stream; returns the lines they completed (none once the file is full).
    @discardableResult
    public func append(stream: OutputChunk.Stream, bytes: [UInt8]) -> [String] {
        let now = clock()
        return state.withLock { s in
            // Output arriving after finish() (a straggling reader) is ignored, not a crash.
            guard !s.finished else { return [] }
            var lines: [String] = []
            let k = stream == .stdout ? 0 : 1
            bytes.withUnsafeBufferPointer { input in
                var start = 0
                // Past the cap only the ring of last lines and the dropped count change, and
                // only the chunk's last `ringCapacity` lines can reach the ring: everything
                // before them is counted and skipped in one step (with the unfinished line
                // it ends), so a flood of short lines costs O(1) per chunk, not per line.
                if s.full, let cut = Self.startOfLastLines(input, Self.ringCapacity) {
                    s.dropped += s.partial[k].count + cut
                    s.partial[k].removeAll(keepingCapacity: true)
                    start = cut
                }
                while start < input.count {
                    guard let nl = Self.indexOfNewline(input, from: start) else {
                        s.partial[k].append(contentsOf: input[start...])
                        // A line that never ends must not grow without bound.
                        while s.partial[k].count > Self.maxLineBytes {
                            let piece = s.partial[k].withUnsafeBufferPointer { UnsafeBufferPointer(rebasing: $0[..<Self.maxLineBytes]) }
                            emit(&s, piece, stream: stream, time: now, complete: false, into: &lines)
                            s.partial[k].removeFirst(Self.maxLineBytes)
                        }
                        break
                    }
                    let segment = UnsafeBufferPointer(rebasing: input[start..<nl])
                    if s.partial[k].isEmpty {
                        emitLine(&s, segment, stream: stream, time: now, into: &lines)
                    } else {
                        // Swap the buffer out (no copy), emit, and hand its capacity back.
                        var joined: [UInt8] = []
                        swap(&joined, &s.partial[k])
                        joined.append(contentsOf: segment)
                        joined.withUnsafeBufferPointer { emitLine(&s, $0, stream: stream, time: now, into: &lines) }
                        joined.removeAll(keepingCapacity: true)
                        s.partial[k] = joined
                    }
                    start = nl + 1
                }
            }
            flush(&s)
            return lines
        }
    }

    /// Writes what is left of unfinished lines (stdout's first) and, if anything was dropped,
    /// the truncation marker, then closes the file. Returns those lines, the marker included
    /// (as `stderr`). Calling it again returns nothing.
    @discardableResult
    public func finish() -> [(stream: OutputChunk.Stream, line: String)] {
        let now = clock()
        return state.withLock { s in
            guard !s.finished else { return [] }
            var result: [(stream: OutputChunk.Stream, line: String)] = []
            for k in 0..<2 where !s.partial[k].isEmpty {
                let stream: OutputChunk.Stream = k == 0 ? .stdout : .stderr
                let rest = s.partial[k]
                s.partial[k] = []
                var lines: [String] = []
                rest.withUnsafeBufferPointer { emitLine(&s, $0, stream: stream, time: now, newline: false, into: &lines) }
                result += lines.map { (stream, $0) }
            }
            if s.dropped > 0 {
                let marker = "[log truncated: \(s.dropped) bytes dropped]"
                s.buffer.append(contentsOf: Array(marker.utf8))
                s.buffer.append(0x0A)
                result.append((.stderr, marker))
            }
            flush(&s)
            close(s.fd)
            s.finished = true
            return result
        }
    }

    /// The last `count` lines of output (at most `ringCapacity`), oldest first, including
    /// lines dropped from the file.
    public func lastLines(_ count: Int = ringCapacity) -> [String] {
        state.withLock { s in
            (s.ring[s.ringHead...] + s.ring[..<s.ringHead]).suffix(max(0, count)).map { String(decoding: $0, as: UTF8.self) }
        }
    }

    /// Output bytes not written because the file was full (or writing failed).
    public var droppedBytes: Int { state.withLock { $0.dropped } }

    /// Bytes written to the file so far (without the truncation marker).
    public var writtenBytes: Int { state.withLock { $0.written } }

    /// The first write that failed, if any; nothing more was written after it.
    public var writeError: StepLogError? { state.withLock { $0.writeError } }

    // MARK: internals

    /// The index just after the newline that precedes the buffer's last `lines` complete
    /// lines, or nil when the buffer has no more than that many newlines.
    static func startOfLastLines(_ buf: UnsafeBufferPointer<UInt8>, _ lines: Int) -> Int? {
        guard let base = buf.baseAddress else { return nil }
        var end = buf.count
        for _ in 0...lines {
            guard end > 0, let hit = agent_memrchr(base, 0x0A, UInt(end)) else { return nil }
            end = base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
        }
        return end + 1
    }

    private static func indexOfNewline(_ buf: UnsafeBufferPointer<UInt8>, from start: Int) -> Int? {
        guard let base = buf.baseAddress, start < buf.count,
              let hit = memchr(base + start, 0x0A, buf.count - start) else { return nil }
        return base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
    }

    /// A complete line: cut into `maxLineBytes` pieces if needed, trailing `\r` removed.
    private func emitLine(_ s: inout State, _ line: UnsafeBufferPointer<UInt8>, stream: OutputChunk.Stream,
                          time: Date, newline: Bool = true, into lines: inout [String]) {
        var rest = line
        if newline, let last = rest.last, last == 0x0D { rest = UnsafeBufferPointer(rebasing: rest[..<(rest.count - 1)]) }
        while rest.count > Self.maxLineBytes {
            emit(&s, UnsafeBufferPointer(rebasing: rest[..<Self.maxLineBytes]), stream: stream, time: time, complete: false, into: &lines)
            rest = UnsafeBufferPointer(rebasing: rest[Self.maxLineBytes...])
        }
        emit(&s, rest, stream: stream, time: time, complete: newline, into: &lines)
    }

    /// One line (or piece of a long line) into the write buffer, the ring and the result.
    private func emit(_ s: inout State, _ line: UnsafeBufferPointer<UInt8>, stream: OutputChunk.Stream,
                      time: Date, complete: Bool, into lines: inout [String]) {
        let size = 24 + 5 + line.count + 1  // timestamp, " out ", line, newline
        if !s.full && s.written + size <= capBytes {
            s.stamps.append(time, to: &s.buffer)
            s.buffer.append(0x20)
            s.buffer.append(contentsOf: stream == .stdout ? [0x6F, 0x75, 0x74] : [0x65, 0x72, 0x72])
            s.buffer.append(0x20)
            s.buffer.append(contentsOf: line)
            s.buffer.append(0x0A)
            s.written += size
            lines.append(String(decoding: line, as: UTF8.self))
        } else {
            s.full = true
            s.dropped += line.count + (complete ? 1 : 0)
        }
        if s.ring.count < Self.ringCapacity {
            s.ring.append(Array(line))
        } else {
            // Reuse the slot's storage: no allocation per line once the ring is warm.
            s.ring[s.ringHead].removeAll(keepingCapacity: true)
            s.ring[s.ringHead].append(contentsOf: line)
            s.ringHead = (s.ringHead + 1) % Self.ringCapacity
        }
    }

    /// Writes the buffer out; after a failure, remembers it and writes nothing more.
    private func flush(_ s: inout State) {
        guard !s.buffer.isEmpty else { return }
        defer { s.buffer.removeAll(keepingCapacity: true) }
        guard s.writeError == nil else { return }
        let fd = s.fd
        let result: Int32 = s.buffer.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                offset += n
            }
            return 0
        }
        if result != 0 {
            s.writeError = StepLogError(path: path, operation: "write", errno: result)
            s.full = true
        }
    }
}
