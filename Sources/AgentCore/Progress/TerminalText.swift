/// Text from steps made safe for the operator's terminal. Build output is untrusted: an
/// escape sequence in it could set the clipboard (OSC 52), retitle the window, move the
/// cursor or forge lines. `--progress tty` drops control characters (it redraws in place and
/// must control the cursor); `--progress plain` shows them escaped, so the log stays
/// faithful without being interpreted.
public enum TerminalText {
    /// C0 controls, DEL and C1 controls (Unicode general category Cc).
    public static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.generalCategory == .control
    }

    /// `text` with every control character but tab shown as `\xHH` (`\u{HHHH}` above
    /// 0xFF): `ESC ] 0 ; t BEL` becomes `\x1b]0;t\x07`. A backslash stays as it is.
    public static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { isControl($0) && $0 != "\t" }) else { return text }
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
