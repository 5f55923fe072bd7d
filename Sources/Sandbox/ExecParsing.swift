import AgentSupport
import FoundationEssentials
import Glibc
import SandboxPolicy

/// Parsers for `agent exec` flag values (pure; the CLI wraps their errors as usage errors).
public enum ExecParsing {
    /// A flag value that cannot be parsed; the message names the flag and the value.
    public struct InvalidValue: Error, CustomStringConvertible, Sendable, Equatable {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// The `--bind`/`--tmpfs` values in command-line order (up to `--`), so mounts apply in
    /// the order given (`--tmpfs /w --bind src:/w/sub`); the option parser keeps no cross-flag order.
    public static func orderedMountFlags(_ arguments: [String]) -> [(flag: String, value: String)] {
        var out: [(flag: String, value: String)] = []
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            if a == "--" { break }
            for flag in ["--bind", "--tmpfs"] {
                if a == flag, i + 1 < arguments.count {
                    out.append((flag, arguments[i + 1]))
                    i += 1
                } else if a.hasPrefix(flag + "=") {
                    out.append((flag, String(a.dropFirst(flag.count + 1))))
                }
            }
            i += 1
        }
        return out
    }

    /// `SRC:DST[:ro|rw]`, read-only by default.
    public static func bind(_ spec: String) throws -> Mount {
        let parts = spec.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2 || parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw InvalidValue("--bind must be SRC:DST[:ro|rw], not '\(spec)'")
        }
        var readOnly = true
        if parts.count == 3 {
            switch parts[2] {
            case "ro": readOnly = true
            case "rw": readOnly = false
            default: throw InvalidValue("--bind mode must be ro or rw, not '\(parts[2])' in '\(spec)'")
            }
        }
        var src = parts[0]
        if !src.hasPrefix("/") { src = FileManager.default.currentDirectoryPath + "/" + src }
        guard parts[1].hasPrefix("/") else { throw InvalidValue("--bind target must be absolute, not '\(parts[1])'") }
        return Mount.bind(src, parts[1], readOnly: readOnly)
    }

    /// `DST[:size=64m[,mode=1777]]`.
    public static func tmpfs(_ spec: String) throws -> Mount {
        let (dst, opts) = spec.firstIndex(of: ":").map { (String(spec[..<$0]), String(spec[spec.index(after: $0)...])) } ?? (spec, "")
        guard dst.hasPrefix("/") else { throw InvalidValue("--tmpfs target must be absolute, not '\(dst)'") }
        var size: UInt64? = nil
        var mode: UInt32 = 0o1777
        for o in opts.split(separator: ",") {
            let kv = o.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2 else { throw InvalidValue("--tmpfs option must be size=N or mode=OCTAL, not '\(o)'") }
            switch kv[0] {
            case "size": size = try bytes(kv[1])
            case "mode":
                guard let m = UInt32(kv[1], radix: 8), m <= 0o7777 else { throw InvalidValue("--tmpfs mode must be octal, not '\(kv[1])'") }
                mode = m
            default: throw InvalidValue("--tmpfs option must be size or mode, not '\(kv[0])'")
            }
        }
        return Mount.tmpfs(dst, size: size, mode: mode)
    }

    /// `64m`, `1g`, `4096`, `512k`.
    public static func bytes(_ s: String) throws -> UInt64 {
        let lower = s.lowercased()
        let units: [(String, UInt64)] = [("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30)]
        for (u, mult) in units where lower.hasSuffix(u) {
            if let n = UInt64(lower.dropLast()), n <= UInt64.max / mult { return n * mult }
        }
        if let n = UInt64(lower) { return n }
        throw InvalidValue("size must be a number with an optional k/m/g suffix, not '\(s)'")
    }

    /// `10s`, `5m`, `500ms`, `1h`, or plain seconds.
    public static func duration(_ s: String) throws -> Duration {
        let table: [(String, (Int64) -> Duration)] = [
            ("ms", { .milliseconds($0) }), ("s", { .seconds($0) }), ("m", { .seconds($0 * 60) }), ("h", { .seconds($0 * 3600) }),
        ]
        for (suffix, make) in table where s.hasSuffix(suffix) {
            if let n = Int64(s.dropLast(suffix.count)), n > 0 { return make(n) }
        }
        if let n = Int64(s), n > 0 { return .seconds(n) }
        throw InvalidValue("--timeout must be like 10s, 5m, 500ms or 1h, not '\(s)'")
    }

    /// `UID[:GID]` (GID defaults to UID).
    public static func user(_ s: String) throws -> (UInt32, UInt32) {
        let p = s.split(separator: ":", omittingEmptySubsequences: false)
        guard p.count <= 2, let u = UInt32(p[0]) else { throw InvalidValue("--user must be UID[:GID] (numbers), not '\(s)'") }
        if p.count == 2 {
            guard let g = UInt32(p[1]) else { throw InvalidValue("--user must be UID[:GID] (numbers), not '\(s)'") }
            return (u, g)
        }
        return (u, u)
    }
}
