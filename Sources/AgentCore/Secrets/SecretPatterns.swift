/// The byte strings that give a secret value away, for the redactor and the leak scanner:
/// the value itself, its common encodings and, for a multi-line value, each line.
///
/// Encodings are generated as the usual tools write them, so a step that prints
/// `echo -n $TOKEN | base64`, a URL with the token in its query, or a JSON document holding
/// it is still caught. Everything shorter than `minimumLength` is dropped: masking very
/// short strings would wreck ordinary output and still not hide the value.
public enum SecretPatterns {
    /// Values (and encoded forms) shorter than this are not redacted.
    public static let minimumLength = 6
    /// Values up to this size get every encoding; larger ones only raw and base64.
    public static let allEncodingsLimit = 4096

    /// All patterns for one value, unique, each at least `minimumLength` bytes. Empty when
    /// the value (without trailing newlines) is shorter than `minimumLength`.
    public static func patterns(for value: [UInt8]) -> [[UInt8]] {
        let trimmed = trimmingTrailingNewlines(value)
        guard trimmed.count >= minimumLength else { return [] }
        var seen = Set<[UInt8]>()
        var result: [[UInt8]] = []
        func add(_ pattern: [UInt8]) {
            if pattern.count >= minimumLength && seen.insert(pattern).inserted { result.append(pattern) }
        }
        // A value read from a file usually ends in a newline that the program printing it
        // drops (`$(cat file)`), so both forms are looked for, with all their encodings.
        // Large values (key stores, certificates bundles) keep only the raw and base64 forms:
        // every pattern byte is an automaton state, and those are the forms such files are
        // printed in.
        let allEncodings = trimmed.count <= allEncodingsLimit
        for form in trimmed.count == value.count ? [value] : [value, trimmed] {
            add(form)
            for offset in 0..<3 {
                let stable = base64Stable(form, offset: offset)
                // At the end of the data the last partial character and the `=` padding are
                // fixed too; without them a few bits of the value would show.
                let ending = base64Ending(form, offset: offset)
                add(stable)
                add(ending)
                if allEncodings {
                    add(base64URL(stable))
                    add(base64URL(ending))
                }
            }
            // `base64` (coreutils) wraps its output every 76 characters.
            for line in base64WrappedLines(form) { add(line) }
            guard allEncodings else { continue }
            for style in URLStyle.allCases { add(urlEncoded(form, style: style)) }
            for style in JSONStyle.allCases {
                if let escaped = jsonEscaped(form, style: style) { add(escaped) }
            }
        }
        let lines = trimmed.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true)
        if lines.count > 1 {
            for line in lines { add(Array(line.last == UInt8(ascii: "\r") ? line.dropLast() : line)) }
        }
        return result
    }

    /// The value without trailing `\n` / `\r\n` (what `$(cat file)` would give).
    public static func trimmingTrailingNewlines(_ value: [UInt8]) -> [UInt8] {
        var end = value.count
        while end > 0 && (value[end - 1] == UInt8(ascii: "\n") || value[end - 1] == UInt8(ascii: "\r")) { end -= 1 }
        return Array(value[0..<end])
    }

    // MARK: base64

    private static let base64Alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// The part of the base64 encoding of `value` that does not depend on its neighbours when
    /// `offset` (0, 1 or 2) other bytes precede it in the encoded data: only the characters
    /// whose 6 bits all come from the value. Every occurrence of the value in base64 data
    /// contains one of the three.
    static func base64Stable(_ value: [UInt8], offset: Int) -> [UInt8] {
        let firstBit = 8 * offset
        let endBit = 8 * (offset + value.count)
        let first = (firstBit + 5) / 6
        let end = endBit / 6
        guard end > first else { return [] }
        let encoded = base64Encode([UInt8](repeating: 0, count: offset) + value)
        return Array(encoded[first..<end])
    }

    /// Like `base64Stable`, for a value that ends the encoded data: runs on to the end of
    /// the encoding, with its `=` padding.
    static func base64Ending(_ value: [UInt8], offset: Int) -> [UInt8] {
        let first = (8 * offset + 5) / 6
        var encoded = base64Encode([UInt8](repeating: 0, count: offset) + value)
        while encoded.count % 4 != 0 { encoded.append(UInt8(ascii: "=")) }
        return first < encoded.count ? Array(encoded[first...]) : []
    }

    /// Plain base64 without `=` padding; a last partial group is filled with zero bits.
    static func base64Encode(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count * 4 + 2) / 3)
        var index = 0
        while index < bytes.count {
            let b0 = Int(bytes[index])
            let b1 = index + 1 < bytes.count ? Int(bytes[index + 1]) : 0
            let b2 = index + 2 < bytes.count ? Int(bytes[index + 2]) : 0
            let group = (b0 << 16) | (b1 << 8) | b2
            let chars = min(4, ((bytes.count - index) * 8 + 5) / 6)
            for k in 0..<chars { out.append(base64Alphabet[(group >> (18 - 6 * k)) & 0x3F]) }
            index += 3
        }
        return out
    }

    /// base64url (RFC 4648 §5): `-` and `_` instead of `+` and `/`.
    static func base64URL(_ encoded: [UInt8]) -> [UInt8] {
        encoded.map { $0 == UInt8(ascii: "+") ? UInt8(ascii: "-") : $0 == UInt8(ascii: "/") ? UInt8(ascii: "_") : $0 }
    }

    /// The stable encoding of a value at the start of base64 data cut into 76-character
    /// lines, one pattern per line; empty when it fits on one line.
    static func base64WrappedLines(_ value: [UInt8]) -> [[UInt8]] {
        let stable = base64Stable(value, offset: 0)
        guard stable.count > 76 else { return [] }
        var lines = stride(from: 0, to: stable.count, by: 76).map { Array(stable[$0..<min($0 + 76, stable.count)]) }
        // The last line as written when the value ends the data (partial character, padding).
        let ending = base64Ending(value, offset: 0)
        lines.append(Array(ending[((ending.count - 1) / 76 * 76)...]))
        return lines
    }

    // MARK: URL encoding

    /// The percent-encoders in common use differ in which punctuation they leave alone and
    /// in how they write a space; hex digits are upper-case in all of them.
    enum URLStyle: CaseIterable {
        /// RFC 3986 unreserved only (Go `url.QueryEscape` for everything but spaces, curl).
        case rfc3986
        /// `application/x-www-form-urlencoded` (Python `quote_plus`, Go `QueryEscape`): space is `+`.
        case form
        /// Python `urllib.parse.quote`: keeps `/`.
        case pythonQuote
        /// JavaScript `encodeURIComponent`: keeps `!'()*`.
        case javaScript

        var keeps: [UInt8] {
            switch self {
            case .rfc3986, .form: return Array("-._~".utf8)
            case .pythonQuote: return Array("-._~/".utf8)
            case .javaScript: return Array("-_.!~*'()".utf8)
            }
        }
    }

    static func urlEncoded(_ value: [UInt8], style: URLStyle) -> [UInt8] {
        let keeps = style.keeps
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(value.count * 3)
        for byte in value {
            let isAlphanumeric = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
            if isAlphanumeric || keeps.contains(byte) {
                out.append(byte)
            } else if byte == 0x20 && style == .form {
                out.append(UInt8(ascii: "+"))
            } else {
                out += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            }
        }
        return out
    }

    // MARK: JSON string escaping

    /// JSON encoders agree on `\"`, `\\` and the short control escapes but differ elsewhere.
    enum JSONStyle: CaseIterable {
        /// Foundation's `JSONSerialization` and `JSONEncoder`: `/` as `\/`.
        case foundation
        /// Python `json.dumps(ensure_ascii=False)`, jq, Rust serde_json: `/` as is.
        case plain
        /// Go `encoding/json`: `<`, `>`, `&`, U+2028 and U+2029 as `\u003c` etc.
        case go
        /// Python `json.dumps` (its default): everything beyond ASCII as `\uXXXX`.
        case asciiOnly
    }

    /// The value as it appears inside a JSON string written by `style`; nil when the value
    /// is not UTF-8 and the style needs to decode it.
    static func jsonEscaped(_ value: [UInt8], style: JSONStyle) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(value.count + 8)
        func unicodeEscape(_ unit: UInt16) {
            let hex = Array("0123456789abcdef".utf8)
            out += Array("\\u".utf8)
            for shift in stride(from: 12, through: 0, by: -4) { out.append(hex[Int((unit >> UInt16(shift)) & 0xF)]) }
        }
        func escapeASCII(_ byte: UInt8) -> Bool {
            switch byte {
            case UInt8(ascii: "\""): out += Array("\\\"".utf8)
            case UInt8(ascii: "\\"): out += Array("\\\\".utf8)
            case UInt8(ascii: "/") where style == .foundation: out += Array("\\/".utf8)
            case 0x08: out += Array("\\b".utf8)
            case 0x0C: out += Array("\\f".utf8)
            case 0x0A: out += Array("\\n".utf8)
            case 0x0D: out += Array("\\r".utf8)
            case 0x09: out += Array("\\t".utf8)
            case 0..<0x20: unicodeEscape(UInt16(byte))
            case UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "&"):
                if style == .go { unicodeEscape(UInt16(byte)) } else { return false }
            default: return false
            }
            return true
        }
        switch style {
        case .foundation, .plain:
            // Bytes beyond ASCII pass through unchanged, so no decoding is needed.
            for byte in value where !escapeASCII(byte) { out.append(byte) }
        case .go, .asciiOnly:
            guard let text = String(validating: value, as: UTF8.self) else { return nil }
            for scalar in text.unicodeScalars {
                if scalar.isASCII {
                    if !escapeASCII(UInt8(scalar.value)) { out.append(UInt8(scalar.value)) }
                } else if style == .asciiOnly || scalar.value == 0x2028 || scalar.value == 0x2029 {
                    for unit in String(scalar).utf16 { unicodeEscape(unit) }
                } else {
                    out += Array(String(scalar).utf8)
                }
            }
        }
        return out
    }
}
