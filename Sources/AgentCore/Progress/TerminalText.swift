/// Text from steps made safe for the operator's terminal. Build output is untrusted: an
/// escape sequence in it could set the clipboard (OSC 52), retitle the window, move the
/// cursor or forge lines. `--progress tty` drops control characters (it redraws in place and
/// must control the cursor); `--progress plain` shows them escaped, so the log stays
/// faithful without being interpreted.
public enum TerminalText {
    /// C0 controls, DEL and C1 controls (Unicode general category Cc: U+0000-U+001F and
    /// U+007F-U+009F). By value: the Unicode property lookup cost 16% of the agent's time
    /// for a step printing long lines.
    public static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
    }

    /// Whether `text` may hold a control character other than tab, looking at its UTF-8
    /// bytes only: a C0 byte, DEL, or 0xC2 (the lead byte of U+0080-U+00BF, which holds the
    /// C1 controls; the rest of that range only costs the exact check).
    static func mayHoldControls(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { bytes in
            bytes.contains { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F || $0 == 0xC2 }
        }
    }

    /// `text` with every control character but tab shown as `\xHH` (`\u{HHHH}` above
    /// 0xFF): `ESC ] 0 ; t BEL` becomes `\x1b]0;t\x07`. A backslash stays as it is.
    public static func escaped(_ text: String) -> String {
        guard mayHoldControls(text), text.unicodeScalars.contains(where: { isControl($0) && $0 != "\t" }) else { return text }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            guard isControl(scalar), scalar != "\t" else { out.append(scalar); continue }
            let hex = String(scalar.value, radix: 16)
            let shown = scalar.value <= 0xFF ? "\\x" + String(repeating: "0", count: 2 - hex.count) + hex : "\\u{\(hex)}"
            out.append(contentsOf: shown.unicodeScalars)
        }
        return String(out)
    }
}
