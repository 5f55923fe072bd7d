import Foundation
import Testing
@testable import AgentCore

/// A seeded generator, so random tests are reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// What redaction must produce, computed the slow, obvious way: every occurrence of every
/// pattern, overlapping or adjacent ones merged, each merged range replaced by `***`.
func referenceRedact(_ text: [UInt8], patterns: [[UInt8]]) -> [UInt8] {
    var ranges: [(Int, Int)] = []
    for pattern in patterns where pattern.count >= SecretPatterns.minimumLength && pattern.count <= text.count {
        for start in 0...(text.count - pattern.count) where text[start..<(start + pattern.count)].elementsEqual(pattern) {
            ranges.append((start, start + pattern.count))
        }
    }
    ranges.sort { $0.0 < $1.0 }
    var merged: [(Int, Int)] = []
    for range in ranges {
        if let last = merged.last, range.0 <= last.1 {
            merged[merged.count - 1].1 = max(last.1, range.1)
        } else {
            merged.append(range)
        }
    }
    var out: [UInt8] = []
    var position = 0
    for (start, end) in merged {
        out += text[position..<start]
        out += Redactor.mask
        position = end
    }
    out += text[position...]
    return out
}

/// Feeds `text` to a fresh redactor in chunks of the given sizes (cycled), then flushes.
func redactInChunks(_ matcher: SecretMatcher, _ text: [UInt8], sizes: [Int]) -> [UInt8] {
    var redactor = Redactor(matcher)
    var out: [UInt8] = []
    var position = 0
    var index = 0
    while position < text.count {
        let size = min(sizes[index % sizes.count], text.count - position)
        out += redactor.process(text[position..<(position + size)])
        position += size
        index += 1
    }
    out += redactor.flush()
    return out
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

@Suite struct RedactorTests {
    let secret = "s3cr3t-T0ken-value"

    func matcher(_ values: String...) -> SecretMatcher {
        SecretMatcher(secrets: values.enumerated().map { (id: "s\($0.offset)", value: bytes($0.element)) })
    }

    @Test func rawValue() {
        let m = matcher(secret)
        #expect(m.redact("token: \(secret) end") == "token: *** end")
        #expect(m.redact(secret) == "***")
        #expect(m.redact("\(secret)\(secret) and \(secret)") == "*** and ***")
        #expect(m.redact("nothing here") == "nothing here")
    }

    @Test func valueSplitAcrossTwoChunksAtEverySplitPoint() {
        let m = matcher(secret)
        let text = bytes("before \(secret) after")
        for split in 0...text.count {
            var redactor = Redactor(m)
            var out = redactor.process(text[0..<split])
            out += redactor.process(text[split...])
            out += redactor.flush()
            #expect(String(decoding: out, as: UTF8.self) == "before *** after", "split at \(split)")
        }
    }

    @Test func byteAtATime() {
        let m = matcher(secret, "another-secret-here")
        let text = bytes("x \(secret)another-secret-here y \(secret)")
        #expect(String(decoding: redactInChunks(m, text, sizes: [1]), as: UTF8.self) == "x *** y ***")
    }

    @Test(arguments: [0, 1, 2])
    func base64InEveryAlignment(prefixLength: Int) {
        let m = matcher(secret)
        for suffix in ["", "x", "xy", "\n"] {
            let plain = String(repeating: "p", count: prefixLength) + secret + suffix
            let encoded = Data(plain.utf8).base64EncodedString()
            let out = m.redact("echo \(encoded) done")
            #expect(out.contains("***"), "prefix \(prefixLength) suffix \(suffix.debugDescription): \(out)")
            #expect(!out.contains(String(SecretPatterns.base64Stable(bytes(secret), offset: prefixLength % 3).map { Character(UnicodeScalar($0)) })))
        }
    }

    @Test func base64URL() {
        // 0xFB 0xFF in the value makes '+' and '/' in standard base64.
        let value: [UInt8] = [0xFB, 0xFF, 0xBF, 0xFB, 0xFF, 0xBF, 0x41, 0x42, 0x43]
        let m = SecretMatcher(secrets: [(id: "bin", value: value)])
        let standard = Data(value).base64EncodedString()
        #expect(standard.contains("+") || standard.contains("/"))
        let url = standard.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        #expect(m.redact("a \(standard) b") == "a *** b")
        #expect(m.redact("a \(url) b") == "a *** b")
    }

    @Test func wrappedBase64() {
        let long = String(repeating: "0123456789abcdef", count: 8)  // 128 bytes: 172 base64 characters
        let m = matcher(long)
        let wrapped = Data(long.utf8).base64EncodedString(options: .lineLength76Characters)
        let out = m.redact(wrapped)
        for line in out.split(separator: "\r\n") { #expect(line == "***", "\(out)") }
    }

    @Test func urlEncoded() {
        let value = "p@ss w/rd:1&x=y"
        let m = matcher(value)
        #expect(m.redact("https://h/?p=p%40ss%20w%2Frd%3A1%26x%3Dy&q=1") == "https://h/?p=***&q=1")
        #expect(m.redact("form p%40ss+w%2Frd%3A1%26x%3Dy end") == "form *** end")
        #expect(m.redact("py p%40ss%20w/rd%3A1%26x%3Dy end") == "py *** end")
        let foundation = value.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        #expect(m.redact(foundation) == "***")
    }

    @Test func jsonEscaped() throws {
        let value = "line\"one\\/two\n\ttab\u{1}<&>"
        let m = matcher(value)
        let serialized = String(decoding: try JSONSerialization.data(withJSONObject: ["k": value]), as: UTF8.self)
        #expect(m.redact(serialized) == #"{"k":"***"}"#, "\(serialized)")
        let encoded = String(decoding: try JSONEncoder().encode(["k": value]), as: UTF8.self)
        #expect(m.redact(encoded) == #"{"k":"***"}"#)
        let plainEncoder = JSONEncoder()
        plainEncoder.outputFormatting = .withoutEscapingSlashes
        #expect(m.redact(String(decoding: try plainEncoder.encode(["k": value]), as: UTF8.self)) == #"{"k":"***"}"#)
        // Go's encoder writes <, & and > as \u003c, \u0026, \u003e.
        #expect(m.redact(#"{"k":"line\"one\\/two\n\ttab\u0001\u003c\u0026\u003e"}"#) == #"{"k":"***"}"#)
    }

    @Test func jsonAsciiOnly() {
        let value = "clé-secrète-ü"
        let m = matcher(value)
        #expect(m.redact(#"{"k": "cl\u00e9-secr\u00e8te-\u00fc"}"#) == #"{"k": "***"}"#)
    }

    @Test func eachLineOfAMultiLineSecret() {
        let key = "-----BEGIN KEY-----\nMIIEabcdefghij\r\nklmnopqrstuv\nend\n-----END KEY-----\n"
        let m = matcher(key)
        #expect(m.redact("got: MIIEabcdefghij!") == "got: ***!")
        #expect(m.redact("got: klmnopqrstuv") == "got: ***")
        #expect(m.redact("short line: end") == "short line: end")  // under 6 bytes: not a pattern
        #expect(m.redact("all:\n\(key)") == "all:\n***")
    }

    @Test func trailingNewlineOfAFileIsOptional() {
        let m = matcher("file-secret-value\n")
        #expect(m.redact("x=file-secret-value;") == "x=***;")
        #expect(m.redact(Data("file-secret-value".utf8).base64EncodedString()) == "***")
    }

    @Test func overlappingMatchesBecomeOneMask() {
        let m = matcher("abcdefgh", "efghijkl", "cdef-long-one")
        #expect(m.redact("xxabcdefghijklyy") == "xx***yy")
        #expect(m.redact("abcdefgh|efghijkl") == "***|***")
        #expect(m.redact("abcdefghabcdefgh") == "***")
        #expect(m.redact("abcdef-long-one") == "ab***")
    }

    @Test func nestedAndPrefixPatterns() {
        let m = matcher("secret-1234", "secret-12345678", "t-123")
        #expect(m.redact("a secret-12345678 b secret-1234 c secret-123 d") == "a *** b *** c secret-123 d")
    }

    @Test func partsOfALongValueAreMasked() {
        var rng = SplitMix64(state: 11)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)
        let long = (0..<1000).map { _ in alphabet.randomElement(using: &rng)! }
        let m = SecretMatcher(secrets: [(id: "long", value: long)])
        #expect(m.longestPattern < 2 * SecretMatcher.pieceLength)
        #expect(m.redact(Array("a ".utf8) + long + Array(" b".utf8)) == Array("a *** b".utf8))
        let part = Array(long[300..<500])
        let out = m.redact(Array("x ".utf8) + part + Array(" y".utf8))
        #expect(out.count < part.count / 2, "\(String(decoding: out, as: UTF8.self))")
        #expect(redactInChunks(m, long + long, sizes: [1, 63, 64, 65]) == Redactor.mask)
    }

    @Test func largeValuesKeepRawAndBase64() {
        let big = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 7) }
        let m = SecretMatcher(secrets: [(id: "keystore", value: big)])
        #expect(m.redact(big) == Redactor.mask)
        let encoded = Array(Data(big).base64EncodedString(options: .lineLength76Characters).utf8)
        #expect(Set(m.redact(encoded).split(separator: 13, omittingEmptySubsequences: true).map { Array($0) })
            .isSubset(of: [Redactor.mask, [10] + Redactor.mask]))
    }

    @Test func shortValuesAreNotRedacted() {
        let m = matcher("abc", "abcde\n")
        #expect(m.isEmpty)
        #expect(m.redact("abc abcde") == "abc abcde")
    }

    @Test func emptyMatcherPassesEverythingThrough() {
        let m = SecretMatcher(secrets: [])
        var redactor = Redactor(m)
        let data: [UInt8] = Array(0...255)
        #expect(redactor.process(data) == data)
        #expect(redactor.flush() == [])
    }

    @Test func binaryDataWithoutMatchesIsUnchanged() {
        var rng = SplitMix64(state: 42)
        let m = matcher(secret, "other-secret-value-x")
        let data = (0..<300_000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        #expect(referenceRedact(data, patterns: [bytes(secret)]) == data)
        #expect(redactInChunks(m, data, sizes: [65536, 1, 7, 4093]) == data)
    }

    @Test func flushReleasesAHeldPartialMatch() {
        let m = matcher(secret)
        var redactor = Redactor(m)
        let out = redactor.process(bytes("line ends with s3cr3t-T0k"))
        #expect(String(decoding: out, as: UTF8.self).hasPrefix("line ends with"))
        #expect(out.count >= bytes("line ends with s3cr3t-T0k").count - (m.longestPattern - 1))
        let rest = redactor.flush()
        #expect(String(decoding: out + rest, as: UTF8.self) == "line ends with s3cr3t-T0k")
        // The redactor starts a new stream after flush.
        #expect(String(decoding: redactor.process(bytes(secret + "\n")) + redactor.flush(), as: UTF8.self) == "***\n")
    }

    @Test func holdsBackLessThanTheLongestPattern() {
        let m = matcher(secret, String(repeating: "long-secret-", count: 20))
        var redactor = Redactor(m)
        var written = 0
        var fed = 0
        var rng = SplitMix64(state: 7)
        for _ in 0..<2000 {
            let chunk = (0..<Int.random(in: 1...50, using: &rng)).map { _ in UInt8(ascii: "a") + UInt8.random(in: 0...25, using: &rng) }
            fed += chunk.count
            written += redactor.process(chunk).count
            #expect(fed - written <= m.longestPattern - 1)
        }
    }

    @Test func copyFreeFillAndEmit() {
        let m = matcher(secret)
        var redactor = Redactor(m)
        let text = bytes("one \(secret) two \(secret)")
        var out: [UInt8] = []
        var position = 0
        while true {
            let filled = redactor.process(filling: 5, from: { room in
                let count = min(room.count, text.count - position)
                text.withUnsafeBytes { all in
                    room.copyMemory(from: UnsafeRawBufferPointer(rebasing: all[position..<(position + count)]))
                }
                position += count
                return count
            }, emit: { out.append(contentsOf: $0) })
            if filled == 0 { break }
        }
        #expect(redactor.process(filling: 5, from: { _ in -1 }, emit: { _ in Issue.record("emitted after a failed read") }) == -1)
        redactor.flush(emit: { out.append(contentsOf: $0) })
        #expect(String(decoding: out, as: UTF8.self) == "one *** two ***")
    }

    @Test func stringRedactionForMessages() {
        let m = matcher(secret)
        var redactor = Redactor(m)
        _ = redactor.process(bytes("s3cr3t"))  // stream state must not leak into redact(_:)
        #expect(redactor.redact("error: bad token \(secret)") == "error: bad token ***")
        #expect(m.redact(bytes("é \(secret) ü")) == bytes("é *** ü"))
    }
}
