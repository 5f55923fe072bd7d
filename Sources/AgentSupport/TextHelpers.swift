import Glibc

// Small text helpers shared by every module of the package. They exist because the
// agent links FoundationEssentials only (not Foundation, whose ICU-backed half costs
// milliseconds of process start-up on every `agent exec`), and FoundationEssentials has
// no CharacterSet trimming or printf-style formatting.

package extension StringProtocol {
    /// The text without leading and trailing spaces and tabs (Foundation's `.whitespaces`).
    func trimmingWhitespace() -> String {
        trimming(while: { $0.isWhitespace && !$0.isNewline })
    }

    /// The text without leading and trailing white space and line breaks.
    func trimmingWhitespaceAndNewlines() -> String {
        trimming(while: { $0.isWhitespace })
    }

    /// The text without leading and trailing characters for which `drop` is true.
    func trimming(while drop: (Character) -> Bool) -> String {
        guard let first = firstIndex(where: { !drop($0) }) else { return "" }
        let last = lastIndex(where: { !drop($0) })!
        return String(self[first...last])
    }
}

/// `value` as lower-case hexadecimal, left-padded with zeros to `width` digits.
package func hexDigits<T: BinaryInteger>(_ value: T, width: Int) -> String {
    let digits = String(value, radix: 16)
    return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}

/// Appends `text` to `out` escaped for the inside of a JSON string: quotes, backslashes,
/// control characters and DEL, so the result is also safe on one log line.
package func appendJSONEscaped(_ text: String, to out: inout String) {
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case "\u{08}": out += "\\b"
        case "\u{0C}": out += "\\f"
        case _ where scalar.value < 0x20 || scalar.value == 0x7F: out += "\\u" + hexDigits(scalar.value, width: 4)
        default: out.unicodeScalars.append(scalar)
        }
    }
}

/// `text` as a JSON string literal, quotes included.
package func jsonQuoted(_ text: String) -> String {
    var out = "\""
    appendJSONEscaped(text, to: &out)
    return out + "\""
}

/// `value` printed with `decimals` digits after the point (printf's `%.Nf`, C locale).
package func fixedPoint(_ value: Double, decimals: Int) -> String {
    withUnsafeTemporaryAllocation(of: CChar.self, capacity: 64) { buffer in
        let n = withVaList([Int32(decimals), value]) { vsnprintf(buffer.baseAddress, 64, "%.*f", $0) }
        guard n > 0 else { return "\(value)" }
        return String(decoding: UnsafeRawBufferPointer(start: buffer.baseAddress, count: min(Int(n), 63)), as: UTF8.self)
    }
}
