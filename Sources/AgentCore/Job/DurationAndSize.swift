import AgentSupport

/// Durations as the job format writes them: a whole number with a unit, units in
/// descending order and each at most once: `500ms`, `90s`, `30m`, `2h`, `1h30m`, `1m30s500ms`.
public enum JobDuration {
    /// Why a duration string was refused; `description` is the message shown after the JSON path.
    public enum ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        case malformed(String)
        case notPositive(String)
        case tooLong(String)

        public var description: String {
            switch self {
            case .malformed(let s):
                return "\(jsonQuoted(s)) is not a duration: use whole numbers with units h, m, s or ms, like \"90s\", \"30m\", \"1h30m\" or \"500ms\""
            case .notPositive(let s):
                return "duration \(jsonQuoted(s)) must be greater than zero"
            case .tooLong(let s):
                return "duration \(jsonQuoted(s)) is too long (the limit is \(maximumHours)h)"
            }
        }
    }

    /// Longer than any CI job should run; also keeps the arithmetic far from overflow.
    public static let maximumHours = 24 * 30

    private static let units: [(suffix: String, milliseconds: Int64)] = [
        ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1),
    ]

    /// Parses `text`; durations must be positive.
    public static func parse(_ text: String) throws(ParseError) -> Duration {
        let bytes = Array(text.utf8)
        var i = 0
        var total: Int64 = 0
        var nextUnit = 0  // index into `units`: each unit may follow only larger ones
        if bytes.isEmpty { throw .malformed(text) }
        while i < bytes.count {
            var digits: Int64 = 0
            let start = i
            while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 {
                digits = digits * 10 + Int64(bytes[i] - 0x30)
                if digits > Int64(maximumHours) * 3_600_000 { throw .tooLong(text) }
                i += 1
            }
            if i == start { throw .malformed(text) }
            var unitEnd = i
            while unitEnd < bytes.count, bytes[unitEnd] >= 0x61, bytes[unitEnd] <= 0x7A { unitEnd += 1 }
            let unit = String(decoding: bytes[i..<unitEnd], as: UTF8.self)
            guard let u = units.firstIndex(where: { $0.suffix == unit }), u >= nextUnit else { throw .malformed(text) }
            nextUnit = u + 1
            total += digits * units[u].milliseconds
            if total > Int64(maximumHours) * 3_600_000 { throw .tooLong(text) }
            i = unitEnd
        }
        if total == 0 { throw .notPositive(text) }
        return .milliseconds(total)
    }

    /// The shortest job-format text for `d` at millisecond precision (`1h30m`, `500ms`).
    public static func format(_ d: Duration) -> String {
        var ms = milliseconds(d)
        if ms <= 0 { return "0s" }
        var out = ""
        for (suffix, size) in units where ms >= size {
            out += "\(ms / size)\(suffix)"
            ms %= size
        }
        return out
    }

    /// Seconds with one decimal and a unit, as progress shows step durations (`4.1s`).
    public static func tenths(_ d: Duration) -> String {
        let tenths = (milliseconds(d) + 50) / 100
        return "\(tenths / 10).\(tenths % 10)s"
    }

    /// Seconds with three decimals and no unit, as progress prefixes output lines (`0.512`).
    public static func millis(_ d: Duration) -> String {
        let ms = max(0, milliseconds(d))
        return "\(ms / 1000).\(pad(ms % 1000, 3))"
    }

    /// Whole milliseconds of `d`, rounded down.
    public static func milliseconds(_ d: Duration) -> Int64 {
        let (s, atto) = d.components
        return s * 1000 + atto / 1_000_000_000_000_000
    }

    static func pad(_ v: Int64, _ width: Int) -> String {
        let s = String(v)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }
}

/// Byte sizes as the job format writes them: a whole number of bytes, or a number with a
/// binary unit `k`, `m`, `g` or `t` (also `kb`, `mib` and upper case): `"512m"`, `"2g"`, `65536`.
public enum JobByteSize {
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
        "\(jsonQuoted(text)) is not a size: use bytes or a number with k, m, g or t, like \"512m\" or \"2g\""
    }
}
