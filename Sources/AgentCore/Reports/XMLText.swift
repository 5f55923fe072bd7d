/// Text helpers for writing XML 1.0 that strict consumers accept.
///
/// Build output is arbitrary bytes: ANSI colour codes, NUL bytes, broken UTF-8, `]]>`.
/// XML 1.0 allows only `#x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]`,
/// so everything else is replaced before it reaches a document:
/// - C0 control characters (other than tab, LF, CR) become their visible Unicode
///   "control picture" (`ESC` → `␛` U+241B, `NUL` → `␀` U+2400), so a reader still sees
///   that a colour code or a NUL was there;
/// - invalid UTF-8 (decoded with replacement), lone surrogates and the non-characters
///   U+FFFE/U+FFFF become U+FFFD.
/// The writer escapes `&`, `<`, `>` (so `]]>` can never appear in character data) and
/// uses no CDATA sections at all.
public enum XMLText {
    /// Decodes bytes as UTF-8 (invalid sequences become U+FFFD) and replaces what XML 1.0 forbids.
    public static func sanitize<Bytes: Sequence>(bytes: Bytes) -> String where Bytes.Element == UInt8 {
        sanitize(String(decoding: Array(bytes), as: UTF8.self))
    }

    /// Replaces the characters XML 1.0 forbids (see the type's documentation).
    public static func sanitize(_ text: String) -> String {
        // Fast path: most output is clean, so don't rebuild it.
        guard text.unicodeScalars.contains(where: { replacement(for: $0) != nil }) else { return text }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if let r = replacement(for: scalar) { out.append(r) } else { out.append(scalar) }
        }
        return String(out)
    }

    /// The scalar to use instead of `scalar`, or nil when XML 1.0 allows it as it is.
    static func replacement(for scalar: Unicode.Scalar) -> Unicode.Scalar? {
        let v = scalar.value
        switch v {
        case 0x9, 0xA, 0xD: return nil
        case 0x0..<0x20: return Unicode.Scalar(0x2400 + v)  // control pictures block
        case 0xFFFE, 0xFFFF: return "\u{FFFD}"
        default: return nil  // Swift strings never hold surrogates; the rest is allowed
        }
    }

    /// Character data: sanitized, with `&`, `<`, `>` escaped and CR kept as `&#13;`
    /// (a parser would otherwise normalise it to LF).
    public static func escapeText(_ text: String) -> String {
        escape(text, attribute: false)
    }

    /// An attribute value (for double quotes): like `escapeText`, plus quotes and
    /// tab/LF/CR as character references so attribute normalisation keeps them.
    public static func escapeAttribute(_ text: String) -> String {
        escape(text, attribute: true)
    }

    private static func escape(_ text: String, attribute: Bool) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count + text.utf8.count / 16)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\r": out += "&#13;"
            case "\"" where attribute: out += "&quot;"
            case "\n" where attribute: out += "&#10;"
            case "\t" where attribute: out += "&#9;"
            default:
                out.unicodeScalars.append(replacement(for: scalar) ?? scalar)
            }
        }
        return out
    }

    /// Cuts `text` to about `maxBytes` UTF-8 bytes, keeping the first quarter and the last
    /// three quarters (the end of a build log usually says what went wrong) with a
    /// `[... N bytes cut ...]` marker between them. Cuts only at character boundaries.
    public static func clip(_ text: String, maxBytes: Int) -> String {
        let utf8 = text.utf8
        guard utf8.count > maxBytes else { return text }
        let bytes = Array(utf8)
        let budget = max(maxBytes, 0)
        var headEnd = budget / 4
        var tailStart = bytes.count - (budget - headEnd)
        // Never split a UTF-8 sequence: continuation bytes are 0b10xxxxxx.
        while headEnd > 0, bytes[headEnd] & 0xC0 == 0x80 { headEnd -= 1 }
        while tailStart < bytes.count, bytes[tailStart] & 0xC0 == 0x80 { tailStart += 1 }
        let cut = tailStart - headEnd
        let head = String(decoding: bytes[..<headEnd], as: UTF8.self)
        let tail = String(decoding: bytes[tailStart...], as: UTF8.self)
        return head + "\n[... \(cut) bytes cut ...]\n" + tail
    }

    /// The last `count` lines of `lines`, joined with LF, with a note of how many came before.
    public static func tail(_ lines: [String], count: Int) -> String {
        guard lines.count > count else { return lines.joined(separator: "\n") }
        let dropped = lines.count - count
        return "[... \(dropped) earlier lines cut ...]\n" + lines.suffix(count).joined(separator: "\n")
    }
}
