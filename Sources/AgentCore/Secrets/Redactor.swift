/// Replaces every secret (and every encoded form of one) in a byte stream with `***`.
///
/// Make one `Redactor` per output stream (a step's stdout and its stderr separately), all
/// sharing the job's `SecretMatcher`. Feed it the stream in whatever chunks the process
/// wrote; a value split across two writes is still caught, because bytes that could be
/// the start of a match are held back (at most `matcher.longestPattern - 1` of them) until
/// the next chunk or `flush()` decides. Overlapping or adjacent matches become one `***`.
///
///     var out = Redactor(matcher)
///     log.write(out.process(chunk))   // for every chunk
///     log.write(out.flush())          // at end of stream
public struct Redactor: Sendable {
    /// What a match is replaced with.
    public static let mask: [UInt8] = Array("***".utf8)

    public let matcher: SecretMatcher
    private var cursor = MatchCursor()
    /// Working buffer: `buffer[0..<held]` are the stream bytes from `pendingBase` on that
    /// are not written out yet; the rest is room for the next chunk. Allocated once and
    /// grown only for larger chunks, so a steady stream does not allocate.
    private var buffer: [UInt8] = []
    private var held = 0
    private var pendingBase = 0
    private var replacements = ReplacementQueue()

    public init(_ matcher: SecretMatcher) {
        self.matcher = matcher
    }

    /// Redacts the next chunk of the stream; returns the bytes that are final so far.
    public mutating func process<Bytes: Sequence<UInt8>>(_ chunk: Bytes) -> [UInt8] {
        var output: [UInt8] = []
        if chunk.withContiguousStorageIfAvailable({ process(UnsafeRawBufferPointer($0), into: &output) }) != nil {
            return output
        }
        let bytes = Array(chunk)
        bytes.withUnsafeBytes { process($0, into: &output) }
        return output
    }

    /// Redacts the next chunk of the stream, appending the final bytes to `output`. The
    /// allocation-free form for hot loops (reuse `output` with `removeAll(keepingCapacity:)`).
    public mutating func process(_ chunk: UnsafeRawBufferPointer, into output: inout [UInt8]) {
        guard !matcher.isEmpty else {
            output.append(contentsOf: chunk)
            return
        }
        _ = process(filling: chunk.count, from: { room in
            room.copyMemory(from: chunk)
            return chunk.count
        }, emit: { output.append(contentsOf: $0) })
    }

    /// The copy-free form for a read loop: `fill` writes up to `capacity` bytes of the
    /// stream straight into the redactor's buffer (e.g. with `read(2)`) and returns how
    /// many it wrote; `emit` then receives the final bytes as one or more pieces (valid only
    /// during the call). Returns what `fill` returned; 0 or less changes nothing, so the
    /// caller can pass `read`'s result through and call `flush(emit:)` at the end.
    @discardableResult
    public mutating func process(filling capacity: Int, from fill: (UnsafeMutableRawBufferPointer) throws -> Int,
                                 emit: (UnsafeRawBufferPointer) throws -> Void) rethrows -> Int {
        if buffer.count < held + capacity {
            buffer.append(contentsOf: repeatElement(0, count: held + capacity - buffer.count))
        }
        let start = held
        let filled = try buffer.withUnsafeMutableBytes { raw in
            try fill(UnsafeMutableRawBufferPointer(rebasing: raw[start..<(start + capacity)]))
        }
        guard filled > 0 else { return filled }
        precondition(filled <= capacity, "fill wrote more than the room it was given")
        if matcher.isEmpty {
            try buffer.withUnsafeBytes { try emit(UnsafeRawBufferPointer(rebasing: $0[start..<(start + filled)])) }
            return filled
        }
        held += filled
        var cursor = self.cursor
        let count = held
        let base = pendingBase
        var replacements = self.replacements
        self.replacements = ReplacementQueue()  // keep the queue uniquely referenced while we work on it
        let commit = buffer.withUnsafeBufferPointer { all in
            matcher.scan(UnsafeBufferPointer(rebasing: all[0..<count]), base: base, cursor: &cursor) { start, end, _ in
                replacements.add(start: start, end: end)
            }
        }
        self.cursor = cursor
        defer { self.replacements = replacements }
        try release(upTo: commit, replacements: &replacements, emit)
        return filled
    }

    /// Ends the stream: returns the bytes held back. The redactor can then start a new stream.
    public mutating func flush() -> [UInt8] {
        var output: [UInt8] = []
        flush(into: &output)
        return output
    }

    /// Ends the stream, appending the bytes held back to `output`.
    public mutating func flush(into output: inout [UInt8]) {
        flush(emit: { output.append(contentsOf: $0) })
    }

    /// Ends the stream, handing the bytes held back to `emit`.
    public mutating func flush(emit: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        // At the end of the stream a partial match can no longer complete: everything is final.
        var replacements = self.replacements
        self.replacements = ReplacementQueue()
        defer {
            cursor = MatchCursor()
            held = 0
            pendingBase = 0
            self.replacements = ReplacementQueue()
        }
        try release(upTo: pendingBase + held, replacements: &replacements, emit)
    }

    /// Redacts a whole string (a message, a status.json field), independently of the stream.
    public func redact(_ text: String) -> String {
        matcher.redact(text)
    }

    /// Hands out the held bytes before `commit`, masking the replacement ranges, and moves
    /// the rest to the front of the buffer.
    private mutating func release(upTo commit: Int, replacements: inout ReplacementQueue,
                               _ emit: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        let base = pendingBase
        var position = base
        try buffer.withUnsafeBytes { all in
            func piece(_ from: Int, _ to: Int) throws {
                if to > from { try emit(UnsafeRawBufferPointer(rebasing: all[(from - base)..<(to - base)])) }
            }
            while position < commit {
                guard let next = replacements.first else {
                    try piece(position, commit)
                    position = commit
                    break
                }
                if position >= next.start {
                    if !replacements.maskWritten {
                        try Self.mask.withUnsafeBytes { try emit($0) }
                        replacements.maskWritten = true
                    }
                    if next.end > position { position = min(commit, next.end) }
                    // Later matches start at or after `commit`, so a replacement that ends
                    // before it can no longer grow (one ending at it still can, by adjacency).
                    if position >= next.end && position < commit { replacements.removeFirst() }
                } else {
                    let stop = min(commit, next.start)
                    try piece(position, stop)
                    position = stop
                }
            }
        }
        let keep = base + held - commit
        if keep > 0 {
            buffer.withUnsafeMutableBytes { raw in
                let start = raw.baseAddress!
                start.copyMemory(from: start + (commit - base), byteCount: keep)
            }
        }
        held = keep
        pendingBase = commit
    }
}

/// The stream ranges to replace that are not fully written yet: sorted, disjoint. Matches
/// arrive ordered by their end; one that overlaps earlier ranges absorbs them.
struct ReplacementQueue: Sendable {
    private var ranges: [(start: Int, end: Int)] = []
    private var head = 0
    /// Whether `***` has been written for the first range (it is being skipped).
    var maskWritten = false

    var first: (start: Int, end: Int)? { head < ranges.count ? ranges[head] : nil }

    mutating func add(start: Int, end: Int) {
        var start = start
        var end = end
        // Touching ranges merge too: the pieces of a long value are adjacent matches.
        while ranges.count > head, let last = ranges.last, last.end >= start {
            start = min(start, last.start)
            end = max(end, last.end)
            ranges.removeLast()
        }
        ranges.append((start, end))
    }

    mutating func removeFirst() {
        head += 1
        maskWritten = false
        if head == ranges.count {
            ranges.removeAll(keepingCapacity: true)
            head = 0
        }
    }
}

extension SecretMatcher {
    /// `text` with every secret replaced by `***`.
    public func redact(_ text: String) -> String {
        if isEmpty { return text }
        var redactor = Redactor(self)
        var output = redactor.process(text.utf8)
        redactor.flush(into: &output)
        return String(decoding: output, as: UTF8.self)
    }

    /// `bytes` with every secret replaced by `***`.
    public func redact(_ bytes: [UInt8]) -> [UInt8] {
        if isEmpty { return bytes }
        var redactor = Redactor(self)
        var output = redactor.process(bytes)
        redactor.flush(into: &output)
        return output
    }
}
