import AgentSupport
import FoundationEssentials
import Glibc

/// UTC timestamps as logs and progress write them: `2026-11-26T21:30:00.123Z`.
///
/// Formatted with `gmtime_r` rather than a DateFormatter: this runs for every chunk of
/// output a step prints, and the formatter is neither cheap nor thread-safe to share.
public enum LogTimestamp {
    /// `2026-11-26T21:30:00.123Z` (always 24 bytes).
    public static func format(_ date: Date) -> String {
        var cache = TimestampCache()
        var out: [UInt8] = []
        cache.append(date, to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}

/// Reuses the formatted date and time while the second stays the same, so a burst of
/// output costs three digit writes per line instead of a calendar computation.
struct TimestampCache {
    private var second: Int64 = .min
    private var buffer = [UInt8](repeating: 0, count: 24)

    /// Appends the 24 timestamp bytes for `date` to `out`.
    mutating func append(_ date: Date, to out: inout [UInt8]) {
        // Half a microsecond up: a Double holding .123 may read back as .12299999.
        let ms = Int64((date.timeIntervalSince1970 * 1000 + 0.0005).rounded(.down))
        let s = ms >= 0 ? ms / 1000 : (ms - 999) / 1000
        let milli = Int(ms - s * 1000)
        if s != second {
            second = s
            var t = time_t(s)
            var tm = Glibc.tm()
            gmtime_r(&t, &tm)
            put(Int(tm.tm_year) + 1900, at: 0, width: 4)
            buffer[4] = 0x2D
            put(Int(tm.tm_mon) + 1, at: 5, width: 2)
            buffer[7] = 0x2D
            put(Int(tm.tm_mday), at: 8, width: 2)
            buffer[10] = 0x54  // T
            put(Int(tm.tm_hour), at: 11, width: 2)
            buffer[13] = 0x3A
            put(Int(tm.tm_min), at: 14, width: 2)
            buffer[16] = 0x3A
            put(Int(tm.tm_sec), at: 17, width: 2)
            buffer[19] = 0x2E
            buffer[23] = 0x5A  // Z
        }
        put(milli, at: 20, width: 3)
        out.append(contentsOf: buffer)
    }

    private mutating func put(_ value: Int, at offset: Int, width: Int) {
        var v = value
        for i in stride(from: offset + width - 1, through: offset, by: -1) {
            buffer[i] = UInt8(0x30 + v % 10)
            v /= 10
        }
    }
}
