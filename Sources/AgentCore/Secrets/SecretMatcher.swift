/// The immutable multi-pattern matcher for one job's secrets, shared by every `Redactor`
/// (one per output stream) and the artifact `SecretScanner`. Build it once per job
/// (`SecretStore.makeMatcher()`); it is safe to use from any number of tasks at once.
///
/// Matching is an Aho–Corasick automaton over bytes with a sampling prefilter in front:
///
/// * Every pattern is at least `shortestPattern` bytes long, so any occurrence covers one of
///   the positions `0, S, 2S, …` where `S = shortestPattern - 3` (capped). Only those
///   positions are looked at while nothing is going on: the 4 bytes there are hashed into a
///   bitset holding the 4-grams that start at offsets `0..<S` of every pattern. A miss at
///   position `j` proves that no occurrence starts in `(j-S, j]`, so those bytes are copied
///   without touching the automaton. That is the fast path for ordinary output.
/// * On a hit the automaton runs from the first byte not yet ruled out and reports exact
///   matches; it hands back to the sampler once its longest partial match starts after the
///   last sample that hit. Each byte is fed to the automaton a bounded number of times, so
///   the whole scan stays linear in the input.
///
/// The automaton is stored flat: depth, failure link, a sorted edge list per state (most
/// states of a secret's trie have one child), dense 256-entry rows for the root and for
/// states with many children.
public final class SecretMatcher: @unchecked Sendable {
    // @unchecked: all storage below is written once in `init` and only read afterwards.

    /// Ids of the secrets the patterns came from (no values).
    public let secretIDs: [String]
    /// Number of distinct patterns (values and encodings).
    public let patternCount: Int
    /// Length of the longest pattern: a redactor holds back at most one byte less.
    public let longestPattern: Int
    /// Length of the shortest pattern.
    public let shortestPattern: Int
    /// Distance between sampled positions of the prefilter.
    let sampleStride: Int
    static let gramLength = 4

    /// Secrets (indices into `secretIDs`) each pattern belongs to.
    private let patternSecrets: [[Int32]]
    private let stateCount: Int
    private let depth: UnsafeMutableBufferPointer<Int32>
    private let fail: UnsafeMutableBufferPointer<Int32>
    private let edgeStart: UnsafeMutableBufferPointer<Int32>
    private let edgeByte: UnsafeMutableBufferPointer<UInt8>
    private let edgeTarget: UnsafeMutableBufferPointer<Int32>
    private let denseIndex: UnsafeMutableBufferPointer<Int32>
    private let dense: UnsafeMutableBufferPointer<Int32>
    private let rootNext: UnsafeMutableBufferPointer<Int32>
    /// Longest pattern ending in this state (following failure links), 0 if none.
    private let matchLength: UnsafeMutableBufferPointer<Int32>
    /// The pattern that ends exactly here, or -1.
    private let terminal: UnsafeMutableBufferPointer<Int32>
    /// The nearest state on the failure chain (not this one) where a pattern ends, or -1.
    private let outputLink: UnsafeMutableBufferPointer<Int32>
    private let filter: UnsafeMutableBufferPointer<UInt64>
    /// Number of bits in `filter` (a power of two).
    private let filterBits: UInt64

    /// True when there is nothing to look for (no secrets, or all too short).
    public var isEmpty: Bool { patternCount == 0 }

    /// Builds the matcher for `secrets`, using `SecretPatterns.patterns(for:)` of each value.
    public convenience init(secrets: [(id: String, value: [UInt8])]) {
        self.init(ids: secrets.map(\.id), patternsPerSecret: secrets.map { SecretPatterns.patterns(for: $0.value) })
    }

    /// Builds a matcher for literal patterns, grouped by secret id (`patternsPerSecret[i]`
    /// belongs to `ids[i]`). Patterns shorter than `SecretPatterns.minimumLength` are ignored.
    public init(ids: [String], patternsPerSecret: [[[UInt8]]]) {
        precondition(ids.count == patternsPerSecret.count)
        secretIDs = ids
        var index: [[UInt8]: Int] = [:]
        var patterns: [[UInt8]] = []
        var owners: [[Int32]] = []
        for (secret, list) in patternsPerSecret.enumerated() {
            for pattern in list.flatMap(Self.pieces) where pattern.count >= SecretPatterns.minimumLength {
                if let known = index[pattern] {
                    if owners[known].last != Int32(secret) { owners[known].append(Int32(secret)) }
                } else {
                    index[pattern] = patterns.count
                    patterns.append(pattern)
                    owners.append([Int32(secret)])
                }
            }
        }
        patternSecrets = owners
        patternCount = patterns.count
        longestPattern = patterns.map(\.count).max() ?? 0
        shortestPattern = patterns.map(\.count).min() ?? 0
        sampleStride = max(1, min(32, shortestPattern - Self.gramLength + 1))

        let trie = TrieBuilder(patterns: patterns)
        let flat = trie.flatten()
        stateCount = flat.depth.count
        depth = Self.copy(flat.depth)
        fail = Self.copy(flat.fail)
        edgeStart = Self.copy(flat.edgeStart)
        edgeByte = Self.copy(flat.edgeByte)
        edgeTarget = Self.copy(flat.edgeTarget)
        denseIndex = Self.copy(flat.denseIndex)
        dense = Self.copy(flat.dense)
        rootNext = Self.copy(flat.rootNext)
        matchLength = Self.copy(flat.matchLength)
        terminal = Self.copy(flat.terminal)
        outputLink = Self.copy(flat.outputLink)

        // Prefilter: 4-grams at offsets 0..<S of every pattern, about 128 bits per gram (sparse
        // enough that a round of four first-hash probes rarely needs a second look).
        let grams = patterns.count * sampleStride
        var bits = 1 << 12
        while bits < grams * 128 && bits < 1 << 24 { bits <<= 1 }
        filterBits = UInt64(bits)
        var words = [UInt64](repeating: 0, count: bits / 64)
        for pattern in patterns where pattern.count >= Self.gramLength + sampleStride - 1 {
            for offset in 0..<sampleStride {
                let gram = UInt32(pattern[offset]) | UInt32(pattern[offset + 1]) << 8
                    | UInt32(pattern[offset + 2]) << 16 | UInt32(pattern[offset + 3]) << 24
                for multiplier in [Self.firstMultiplier, Self.secondMultiplier] {
                    let hash = Self.slot(gram, multiplier, bits: filterBits)
                    words[hash >> 6] |= 1 << UInt64(hash & 63)
                }
            }
        }
        filter = Self.copy(words)
    }

    deinit {
        for buffer in [depth, fail, edgeStart, edgeTarget, denseIndex, dense, rootNext, matchLength, terminal, outputLink] {
            buffer.deallocate()
        }
        edgeByte.deallocate()
        filter.deallocate()
    }

    /// Long patterns are matched as consecutive pieces of `pieceLength` bytes (the last one
    /// up to twice that): a leak of any long enough part of a long value is still masked,
    /// pieces shared by several encodings are stored once, and a redactor never holds
    /// back more than `2 * pieceLength - 2` bytes. A whole value shows as one `***`
    /// because adjacent matches merge.
    static let pieceLength = 64

    static func pieces(_ pattern: [UInt8]) -> [[UInt8]] {
        guard pattern.count >= 2 * pieceLength else { return [pattern] }
        var result: [[UInt8]] = []
        var start = 0
        while pattern.count - start >= 2 * pieceLength {
            result.append(Array(pattern[start..<(start + pieceLength)]))
            start += pieceLength
        }
        result.append(Array(pattern[start...]))
        return result
    }

    private static func copy<T>(_ array: [T]) -> UnsafeMutableBufferPointer<T> {
        let buffer = UnsafeMutableBufferPointer<T>.allocate(capacity: max(1, array.count))
        _ = buffer.initialize(from: array)
        return buffer
    }

    static let firstMultiplier: UInt32 = 0x9E37_79B1
    static let secondMultiplier: UInt32 = 0x85EB_CA77

    /// The filter bit for `gram`: the top bits of a multiplicative hash, taken with a
    /// multiply rather than a variable shift (x86 shifts by a register serialize on `cl`).
    @inline(__always)
    static func slot(_ gram: UInt32, _ multiplier: UInt32, bits: UInt64) -> Int {
        Int(truncatingIfNeeded: (UInt64(gram &* multiplier) &* bits) &>> 32)
    }

    @inline(__always)
    private func filterBit(_ slot: Int) -> Bool {
        filter[slot &>> 6] & (1 &<< UInt64(truncatingIfNeeded: slot & 63)) != 0
    }

    /// Whether `gram` may start at offset `0..<S` of a pattern: two bits of one bitset
    /// (a Bloom filter with two hashes), so common text grams rarely collide with both.
    @inline(__always)
    func filterContains(_ gram: UInt32) -> Bool {
        filterBit(Self.slot(gram, Self.firstMultiplier, bits: filterBits))
            && filterBit(Self.slot(gram, Self.secondMultiplier, bits: filterBits))
    }

    /// The automaton's transition: goto edge if there is one, else follow failure links.
    @inline(__always)
    private func step(_ state: Int32, _ byte: UInt8) -> Int32 {
        var s = Int(state)
        while s != 0 {
            let row = Int(denseIndex[s])
            if row >= 0 {
                let target = dense[row &* 256 &+ Int(byte)]
                if target >= 0 { return target }
            } else {
                var edge = Int(edgeStart[s])
                let last = Int(edgeStart[s &+ 1])
                while edge < last {
                    if edgeByte[edge] == byte { return edgeTarget[edge] }
                    edge &+= 1
                }
            }
            s = Int(fail[s])
        }
        return rootNext[Int(byte)]
    }

    /// Calls `body` with the index (into `secretIDs`) of every secret with a pattern
    /// ending in `state`.
    func forEachSecret(endingIn state: Int32, _ body: (Int) -> Void) {
        var s = terminal[Int(state)] >= 0 ? Int(state) : Int(outputLink[Int(state)])
        while s >= 0 {
            for secret in patternSecrets[Int(terminal[s])] { body(Int(secret)) }
            s = Int(outputLink[s])
        }
    }

    /// Scans `buffer`, which holds the stream bytes `[base, base + buffer.count)`, continuing
    /// from `cursor`. Calls `onMatch(start, end, state)` for each position where a pattern ends,
    /// with the longest pattern ending there (shorter ones ending there lie inside it).
    /// Returns the commit point: every match starting before it has been reported and no
    /// later match can start before it, so bytes before it are final. `buffer` must begin at
    /// or before the commit point returned by the previous call.
    @inline(__always)
    func scan(_ buffer: UnsafeBufferPointer<UInt8>, base: Int, cursor: inout MatchCursor,
              onMatch: (Int, Int, Int32) -> Void) -> Int {
        let end = base + buffer.count
        guard let bytes = buffer.baseAddress else { return cursor.inAC ? cursor.position - Int(depth[Int(cursor.state)]) : cursor.floor }
        let stride = sampleStride
        let q = Self.gramLength
        while true {
            if !cursor.inAC {
                // Sampling: skip blocks of S candidate start positions per 4-gram probe.
                var sample = cursor.nextSample
                var floor = cursor.floor
                var hit = false
                // Four probes per round with one branch: the loads and hashes of a round are
                // independent, so they overlap; a round with any first-hash hit falls through
                // to the one-at-a-time loop below, which decides exactly.
                let filterBits = self.filterBits
                sampling: while true {
                    while sample &+ 3 &* stride &+ q <= end {
                        let at = UnsafeRawPointer(bytes + (sample &- base))
                        let s0 = Self.slot(UInt32(littleEndian: at.loadUnaligned(as: UInt32.self)), Self.firstMultiplier, bits: filterBits)
                        let s1 = Self.slot(UInt32(littleEndian: at.loadUnaligned(fromByteOffset: stride, as: UInt32.self)),
                                           Self.firstMultiplier, bits: filterBits)
                        let s2 = Self.slot(UInt32(littleEndian: at.loadUnaligned(fromByteOffset: 2 &* stride, as: UInt32.self)),
                                           Self.firstMultiplier, bits: filterBits)
                        let s3 = Self.slot(UInt32(littleEndian: at.loadUnaligned(fromByteOffset: 3 &* stride, as: UInt32.self)),
                                           Self.firstMultiplier, bits: filterBits)
                        let any = (filterBit(s0) ? 1 : 0) | (filterBit(s1) ? 1 : 0) | (filterBit(s2) ? 1 : 0) | (filterBit(s3) ? 1 : 0)
                        if any != 0 { break }
                        floor = sample &+ 3 &* stride &+ 1
                        sample &+= 4 &* stride
                    }
                    // The round that may hit (or the last few samples): one at a time, both hashes.
                    var probes = 0
                    while sample &+ q <= end && probes < 4 {
                        let gram = UnsafeRawPointer(bytes + (sample &- base)).loadUnaligned(as: UInt32.self)
                        if filterContains(UInt32(littleEndian: gram)) { hit = true; break sampling }
                        floor = sample &+ 1
                        sample &+= stride
                        probes &+= 1
                    }
                    if sample &+ q > end { break }
                }
                if !hit && floor >= end {
                    cursor.floor = floor
                    cursor.nextSample = sample
                    return floor
                }
                // A hit, or the end of the buffer where the sample's 4 bytes are not all here:
                // the automaton takes over from the first position not ruled out.
                cursor = MatchCursor(inAC: true, state: 0, floor: floor, position: floor,
                                     nextSample: hit ? sample &+ stride : sample, lastHit: hit ? sample : -1, gram: 0)
            }
            var state = cursor.state
            var position = cursor.position
            var gram = cursor.gram
            var nextSample = cursor.nextSample
            var lastHit = cursor.lastHit
            var handedBack = false
            while position < end {
                let byte = bytes[position &- base]
                state = step(state, byte)
                position &+= 1
                gram = (gram &>> 8) | (UInt32(byte) &<< 24)
                let length = Int(matchLength[Int(state)])
                if length > 0 { onMatch(position &- length, position, state) }
                if position == nextSample &+ q {
                    // The automaton keeps probing the samples it passes, so it knows when
                    // the partial match it tracks can no longer reach one that hit.
                    if filterContains(gram) { lastHit = nextSample }
                    nextSample &+= stride
                    let pending = position &- Int(depth[Int(state)])
                    if pending > lastHit {
                        let floor = max(pending, nextSample &- stride &+ 1)
                        cursor.inAC = false
                        cursor.floor = floor
                        cursor.nextSample = (floor &+ stride &- 1) / stride &* stride
                        handedBack = true
                        break
                    }
                }
            }
            if handedBack { continue }
            cursor.state = state
            cursor.position = position
            cursor.gram = gram
            cursor.nextSample = nextSample
            cursor.lastHit = lastHit
            return position &- Int(depth[Int(state)])
        }
    }
}

/// Where a scan of one stream stands; owned by one `Redactor` or one file scan.
struct MatchCursor: Sendable {
    /// True while the automaton runs (a sample hit); false while sampling.
    var inAC = false
    var state: Int32 = 0
    /// Sampling: no match starts before this position (those before were reported).
    var floor = 0
    /// Automaton: the next position to feed.
    var position = 0
    /// The next sampled position to probe (a multiple of the stride).
    var nextSample = 0
    /// The last sampled position that hit (automaton only).
    var lastHit = -1
    /// The last 4 bytes fed to the automaton, for probing samples as it passes them.
    var gram: UInt32 = 0
}
