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
    /// Stream bytes from `pendingBase` on that have not been written out yet.
    private var pending: [UInt8] = []
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
        pending.append(contentsOf: chunk)
        var cursor = self.cursor
        var replacements = self.replacements
        self.replacements = ReplacementQueue()  // keep the queue uniquely referenced while we work on it
        let commit = pending.withUnsafeBufferPointer { buffer in
            matcher.scan(buffer, base: pendingBase, cursor: &cursor) { start, end, _ in
                replacements.add(start: start, end: end)
            }
        }
        self.cursor = cursor
        emit(upTo: commit, replacements: &replacements, into: &output)
        self.replacements = replacements
    }

    /// Ends the stream: returns the bytes held back. The redactor can then start a new stream.
    public mutating func flush() -> [UInt8] {
        var output: [UInt8] = []
        flush(into: &output)
        return output
    }

    /// Ends the stream, appending the bytes held back to `output`.
    public mutating func flush(into output: inout [UInt8]) {
        // At the end of the stream a partial match can no longer complete: everything is final.
        var replacements = self.replacements
        self.replacements = ReplacementQueue()
        emit(upTo: pendingBase + pending.count, replacements: &replacements, into: &output)
        cursor = MatchCursor()
        pending.removeAll(keepingCapacity: true)
        pendingBase = 0
    }

    /// Redacts a whole string (a message, a status.json field), independently of the stream.
    public func redact(_ text: String) -> String {
        matcher.redact(text)
    }

    /// Writes out the pending bytes before `commit`, masking the replacement intervals.
    private mutating func emit(upTo commit: Int, replacements: inout ReplacementQueue, into output: inout [UInt8]) {
        var position = pendingBase
        pending.withUnsafeBufferPointer { buffer in
            while position < commit {
                guard let next = replacements.first else {
                    output.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[(position - pendingBase)..<(commit - pendingBase)]))
                    position = commit
                    break
                }
                if position >= next.start {
                    if !replacements.maskWritten {
                        output.append(contentsOf: Self.mask)
                        replacements.maskWritten = true
                    }
                    if next.end > position { position = min(commit, next.end) }
                    // Later matches start at or after `commit`, so a replacement that ends
                    // before it can no longer grow (one ending at it still can, by adjacency).
                    if position >= next.end && position < commit { replacements.removeFirst() }
                } else {
                    let stop = min(commit, next.start)
                    output.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[(position - pendingBase)..<(stop - pendingBase)]))
                    position = stop
                }
            }
        }
        pending.removeSubrange(0..<(commit - pendingBase))
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
