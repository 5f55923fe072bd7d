/// Minimal JSON text helpers shared by the job parser's messages and the JSON progress
/// renderer, which writes its objects by hand so that `"type"` comes first and no
/// intermediate dictionaries are built per log line.
enum JSONText {
    private static let hex: [Character] = Array("0123456789abcdef")

    /// Appends `s` escaped for use inside a JSON string literal (RFC 8259 §7).
    static func appendEscaped(_ s: String, to out: inout String) {
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out += "\\u00"
                    out.append(hex[Int(scalar.value >> 4)])
                    out.append(hex[Int(scalar.value & 0xF)])
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
    }

    /// `s` as a JSON string literal, quotes included.
    static func quoted(_ s: String) -> String {
        var out = "\""
        appendEscaped(s, to: &out)
        out += "\""
        return out
    }
}
