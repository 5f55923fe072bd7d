import Testing
@testable import AgentCore

/// The redactor against `referenceRedact` on random inputs built to contain many matches,
/// near-matches and overlaps, cut into random chunks. Seeded, so failures reproduce.
@Suite struct RedactRandomTests {
    /// Random patterns over a small alphabet (so they overlap and share prefixes), and text
    /// made of pattern pieces, whole patterns and noise.
    func scenario(seed: UInt64, patternCount: Int, alphabet: Int, textLength: Int)
        -> (patterns: [[UInt8]], text: [UInt8], chunks: [Int]) {
        var rng = SplitMix64(state: seed)
        let patterns: [[UInt8]] = (0..<patternCount).map { _ in
            (0..<Int.random(in: 6...24, using: &rng)).map { _ in UInt8(ascii: "a") + UInt8.random(in: 0..<UInt8(alphabet), using: &rng) }
        }
        var text: [UInt8] = []
        while text.count < textLength {
            let pattern = patterns.randomElement(using: &rng)!
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: text += pattern
            case 1: text += pattern[0..<Int.random(in: 0..<pattern.count, using: &rng)]
            case 2: text += pattern[Int.random(in: 0..<pattern.count, using: &rng)...]
            default:
                text += (0..<Int.random(in: 0...12, using: &rng)).map { _ in UInt8(ascii: "a") + UInt8.random(in: 0..<UInt8(alphabet + 1), using: &rng) }
            }
        }
        let chunks = (0..<16).map { _ in Int.random(in: 1...97, using: &rng) }
        return (patterns, text, chunks)
    }

    @Test(arguments: 0..<40)
    func matchesTheReference(seed: Int) {
        let s = scenario(seed: UInt64(seed), patternCount: 1 + seed % 12, alphabet: 2 + seed % 5, textLength: 3000)
        let m = SecretMatcher(ids: s.patterns.indices.map { "p\($0)" }, patternsPerSecret: s.patterns.map { [$0] })
        let expected = referenceRedact(s.text, patterns: s.patterns)
        #expect(m.redact(s.text) == expected, "seed \(seed), whole")
        #expect(redactInChunks(m, s.text, sizes: s.chunks) == expected, "seed \(seed), chunks \(s.chunks)")
        #expect(redactInChunks(m, s.text, sizes: [1]) == expected, "seed \(seed), bytewise")
    }

    /// Long patterns are matched as pieces; the reference is given the same pieces.
    @Test(arguments: 0..<10)
    func longPatternsMatchTheReference(seed: Int) {
        var rng = SplitMix64(state: UInt64(1000 + seed))
        let patterns: [[UInt8]] = (0..<3).map { _ in
            (0..<Int.random(in: 100...300, using: &rng)).map { _ in UInt8(ascii: "a") + UInt8.random(in: 0..<3, using: &rng) }
        }
        var text: [UInt8] = []
        while text.count < 6000 {
            let pattern = patterns.randomElement(using: &rng)!
            let from = Int.random(in: 0..<pattern.count, using: &rng)
            text += Int.random(in: 0..<3, using: &rng) == 0 ? pattern : Array(pattern[from...])
            text += (0..<Int.random(in: 0...5, using: &rng)).map { _ in UInt8(ascii: "a") + UInt8.random(in: 0..<4, using: &rng) }
        }
        let m = SecretMatcher(ids: ["a", "b", "c"], patternsPerSecret: patterns.map { [$0] })
        let expected = referenceRedact(text, patterns: patterns.flatMap(SecretMatcher.pieces))
        #expect(redactInChunks(m, text, sizes: [Int.random(in: 1...200, using: &rng), 7, 1]) == expected, "seed \(seed)")
    }

    @Test func manySecrets() {
        var rng = SplitMix64(state: 99)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)
        let values: [[UInt8]] = (0..<200).map { _ in (0..<Int.random(in: 8...40, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! } }
        let m = SecretMatcher(secrets: values.enumerated().map { (id: "s\($0.offset)", value: $0.element) })
        var text: [UInt8] = []
        var expected: [UInt8] = []
        for line in 0..<3000 {
            let noise = Array("compiling module \(line) of 3000 [\(line * 7 % 13)] ok ".utf8)
            text += noise
            expected += noise
            if line % 5 == 0 {
                text += values[line % values.count]
                expected += Redactor.mask
            }
            text.append(10)
            expected.append(10)
        }
        #expect(redactInChunks(m, text, sizes: [4096, 13, 1000]) == expected)
    }
}
