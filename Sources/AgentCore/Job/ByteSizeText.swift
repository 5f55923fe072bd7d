/// Byte sizes as the job format writes them: a whole number of bytes, or a number with a
/// binary unit `k`, `m`, `g` or `t` (also `kb`, `mib` and upper case): `"512m"`, `"2g"`, `65536`.
public enum ByteSizeText {
    /// Parses a size string; nil when it is not one.
    public static func parse(_ text: String) -> UInt64? {
        let lower = text.lowercased()
        let digits = lower.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, let n = UInt64(digits) else { return nil }
        let shift: UInt64
        switch lower.dropFirst(digits.count) {
        case "", "b": shift = 0
        case "k", "kb", "kib": shift = 10
        case "m", "mb", "mib": shift = 20
        case "g", "gb", "gib": shift = 30
        case "t", "tb", "tib": shift = 40
        default: return nil
        }
        let (v, overflow) = n.multipliedReportingOverflow(by: 1 << shift)
        return overflow ? nil : v
    }

    /// The message for a string that is not a size.
    static func malformedMessage(_ text: String) -> String {
        "\(JSONText.quoted(text)) is not a size: use bytes or a number with k, m, g or t, like \"512m\" or \"2g\""
    }
}
