import AgentSupport
import FoundationEssentials
import Glibc

extension MountSpec {
    /// Parses a BuildKit `--mount` string as written in a Dockerfile
    /// (`type=cache,target=/root/.cache/pip,sharing=locked`). `path` is the JSON path for errors.
    ///
    /// The string is split like BuildKit does (a CSV record, so a field may be double-quoted to
    /// hold a comma); each field is `key=value` or a bare flag (`ro`), which means `key=true`.
    /// The type defaults to `bind`, as in BuildKit.
    public static func parse(buildKit text: String, path: String) throws -> MountSpec {
        var options: [(key: String, value: RawValue)] = []
        for field in try splitCSV(text, path: path) {
            let trimmed = field.trimmingWhitespace()
            if trimmed.isEmpty { continue }
            if let eq = trimmed.firstIndex(of: "=") {
                let key = trimmed[..<eq].lowercased()
                options.append((key, .string(String(trimmed[trimmed.index(after: eq)...]))))
            } else {
                options.append((trimmed.lowercased(), .flag))
            }
        }
        return try MountOptionParser(path: path, options: options).parse()
    }

    /// Parses the JSON-object form of a mount (same keys as the string form; booleans as JSON
    /// booleans or strings, numbers as JSON numbers or strings, `mode` also as an octal string).
    package static func parse(object: [String: JSONValue], path: String) throws -> MountSpec {
        var options: [(key: String, value: RawValue)] = []
        // Sorted so the first reported problem does not depend on dictionary order.
        for key in object.keys.sorted() {
            switch object[key]! {
            case .bool(let b): options.append((key.lowercased(), .bool(b)))
            case .unsigned(let n): options.append((key.lowercased(), .number(Double(n), "\(n)")))
            case .signed(let n): options.append((key.lowercased(), .number(Double(n), "\(n)")))
            case .double(let d): options.append((key.lowercased(), .number(d, "\(d)")))
            case .string(let s): options.append((key.lowercased(), .string(s)))
            default:
                throw JobValidationError(path: path, message: "mount option \"\(key)\" must be a string, number or boolean")
            }
        }
        return try MountOptionParser(path: path, options: options).parse()
    }

    /// Parses a test step's `tmpfs` entry (`"/workspace/.cache:size=16m,mode=1777"`).
    public static func parse(tmpfsShorthand text: String, path: String) throws -> MountSpec {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        var fields = "type=tmpfs,target=\(parts.first ?? "")"
        if parts.count == 2 { fields += "," + parts[1] }
        return try parse(buildKit: fields, path: path)
    }

    /// Splits one CSV record (RFC 4180 quoting), as Go's encoding/csv reads BuildKit's flag.
    static func splitCSV(_ text: String, path: String) throws -> [String] {
        var fields: [String] = []
        var current = ""
        var inQuotes = false
        var chars = Array(text)[...]
        while let c = chars.popFirst() {
            if inQuotes {
                if c == "\"" {
                    if chars.first == "\"" { current.append("\""); chars.removeFirst() } else { inQuotes = false }
                } else {
                    current.append(c)
                }
            } else if c == "\"" {
                inQuotes = true
            } else if c == "," {
                fields.append(current)
                current = ""
            } else {
                current.append(c)
            }
        }
        if inQuotes { throw JobValidationError(path: path, message: "unterminated quote in mount \"\(text)\"") }
        fields.append(current)
        return fields
    }
}

/// One option value before it is interpreted: the two input forms differ only here.
enum RawValue {
    case flag
    case bool(Bool)
    /// A JSON number: its value and its text as the user wrote it (`755`, `1.5`).
    case number(Double, String)
    case string(String)
}

/// Interprets the options of one mount; shared by the string and the JSON form so both
/// give equal `MountSpec` values and the same errors.
struct MountOptionParser {
    let path: String
    let options: [(key: String, value: RawValue)]

    /// Option names per type, with the synonyms BuildKit accepts mapped to one canonical key.
    static let synonyms: [String: String] = [
        "dst": "target", "destination": "target", "target": "target",
        "src": "source", "source": "source",
        "ro": "readonly", "readonly": "readonly",
        "rw": "readwrite", "readwrite": "readwrite",
    ]
    static let allowed: [String: Set<String>] = [
        "cache": ["type", "target", "id", "sharing", "readonly", "readwrite", "mode", "uid", "gid"],
        "secret": ["type", "target", "id", "required", "mode", "uid", "gid", "env"],
        "volume": ["type", "source", "target", "readonly", "readwrite"],
        "bind": ["type", "source", "target", "readonly", "readwrite"],
        "tmpfs": ["type", "target", "size", "mode"],
    ]
    static let allKeys: [String] = ["type", "target", "dst", "destination", "id", "sharing", "ro", "readonly",
                                    "rw", "readwrite", "mode", "uid", "gid", "required", "env", "source",
                                    "src", "size", "from"]

    func parse() throws -> MountSpec {
        var values: [String: RawValue] = [:]
        for (key, value) in options {
            let canonical = Self.synonyms[key] ?? key
            guard Self.allKeys.contains(key) else {
                throw error("unknown mount option \"\(key)\"" + suggestion(for: key))
            }
            if key == "from" {
                throw error("mount option \"from\" is not supported (mounts come from the host, caches and volumes)")
            }
            if values[canonical] != nil {
                throw error("mount option \"\(key)\" is given more than once")
            }
            values[canonical] = value
        }
        let type: String
        switch values["type"] {
        case nil: type = "bind"
        case .string(let s)?: type = s.lowercased()
        default: throw error("mount option \"type\" must be one of bind, cache, secret, tmpfs, volume")
        }
        guard let allowed = Self.allowed[type] else {
            throw error("unknown mount type \"\(type)\" (expected bind, cache, secret, tmpfs or volume)")
        }
        for (key, _) in options where !allowed.contains(Self.synonyms[key] ?? key) {
            throw error("mount option \"\(key)\" does not apply to type=\(type)")
        }
        let readOnly = try readOnlyFlag(values)
        switch type {
        case "cache":
            let target = try requiredTarget(values)
            var c = MountSpec.Cache(target: target, id: try string(values, "id"))
            if c.id.isEmpty { throw error("mount option \"id\" must not be empty") }
            if let s = try string(values, "sharing") {
                guard let sharing = MountSpec.Sharing(rawValue: s.lowercased()) else {
                    throw error("invalid sharing \"\(s)\" (expected shared, private or locked)")
                }
                c.sharing = sharing
            }
            c.readOnly = readOnly ?? false
            c.mode = try mode(values) ?? 0o755
            c.uid = try id(values, "uid") ?? 0
            c.gid = try id(values, "gid") ?? 0
            return .cache(c)
        case "secret":
            guard let id = try string(values, "id"), !id.isEmpty else {
                throw error("secret mount needs an \"id\"")
            }
            let env = try string(values, "env")
            if let env, env.isEmpty || env.contains("=") { throw error("invalid env name \"\(env)\"") }
            var target = try string(values, "target")
            if let t = target { try checkTarget(t) }
            if env == nil && target == nil { target = "/run/secrets/\(id)" }
            var s = MountSpec.Secret(id: id, target: target, env: env)
            s.required = try bool(values, "required") ?? false
            s.mode = try mode(values) ?? 0o400
            s.uid = try self.id(values, "uid") ?? 0
            s.gid = try self.id(values, "gid") ?? 0
            return .secret(s)
        case "volume":
            let target = try requiredTarget(values)
            guard let source = try string(values, "source"), !source.isEmpty else {
                throw error("volume mount needs a \"source\" (the volume name)")
            }
            guard VolumeName.isValid(source) else {
                throw error("invalid volume name \"\(source)\" (expected [A-Za-z0-9][A-Za-z0-9._-]*)")
            }
            return .volume(source: source, target: target, readOnly: readOnly ?? false)
        case "bind":
            let target = try requiredTarget(values)
            guard let source = try string(values, "source"), !source.isEmpty else {
                throw error("bind mount needs a \"source\" (a host path)")
            }
            return .bind(source: source, target: target, readWrite: !(readOnly ?? true))
        default: // tmpfs
            let target = try requiredTarget(values)
            var size: UInt64?
            switch values["size"] {
            case nil: size = nil
            case .number(let n, let text)?:
                guard n >= 1, n.rounded() == n, n < 9.2e18 else { throw error("invalid tmpfs size \(text)") }
                size = UInt64(n)
            case .string(let s)?:
                guard let v = ByteSize.parse(s) else { throw error("invalid tmpfs size \"\(s)\" (e.g. 65536, 64m, 1g)") }
                size = v
            default: throw error("mount option \"size\" needs a value")
            }
            return .tmpfs(target: target, size: size, mode: try mode(values) ?? 0o1777)
        }
    }

    // MARK: - Values

    private func error(_ message: String) -> JobValidationError {
        JobValidationError(path: path, message: message)
    }

    private func suggestion(for key: String) -> String {
        guard let best = DidYouMean.suggestion(for: key, among: Self.allKeys) else { return "" }
        return " (did you mean \"\(best)\"?)"
    }

    /// `ro`/`readonly` and `rw`/`readwrite` are two spellings of one setting; nil when absent.
    private func readOnlyFlag(_ values: [String: RawValue]) throws -> Bool? {
        let ro = try bool(values, "readonly")
        let rw = try bool(values, "readwrite")
        if let ro, let rw, ro == rw { throw error("mount options \"ro\" and \"rw\" contradict each other") }
        return ro ?? rw.map { !$0 }
    }

    private func requiredTarget(_ values: [String: RawValue]) throws -> String {
        guard let t = try string(values, "target"), !t.isEmpty else {
            throw error("mount needs a \"target\" (the path inside the container)")
        }
        try checkTarget(t)
        return t
    }

    private func checkTarget(_ t: String) throws {
        guard t.hasPrefix("/") else { throw error("mount target \"\(t)\" must be an absolute path") }
        if t.contains("\0") { throw error("mount target must not contain NUL") }
    }

    private func string(_ values: [String: RawValue], _ key: String) throws -> String? {
        switch values[key] {
        case nil: return nil
        case .string(let s)?: return s
        case .number(_, let text)?: return text
        case .flag?, .bool?: throw error("mount option \"\(key)\" needs a value")
        }
    }

    private func bool(_ values: [String: RawValue], _ key: String) throws -> Bool? {
        switch values[key] {
        case nil: return nil
        case .flag?: return true
        case .bool(let b)?: return b
        case .string(let s)?:
            switch s.lowercased() {
            case "true", "1": return true
            case "false", "0": return false
            default: throw error("mount option \"\(key)\" must be true or false, not \"\(s)\"")
            }
        case .number(_, let text)?: throw error("mount option \"\(key)\" must be true or false, not \(text)")
        }
    }

    /// Modes are octal as in BuildKit (`0755`, `755`); a JSON number is read as written in octal
    /// digits too (`755` means 0o755), since JSON has no octal literal.
    private func mode(_ values: [String: RawValue]) throws -> UInt32? {
        let text: String
        switch values["mode"] {
        case nil: return nil
        case .string(let s)?: text = s.hasPrefix("0o") ? String(s.dropFirst(2)) : s
        case .number(_, let t)?: text = t
        default: throw error("mount option \"mode\" needs an octal value such as 0755")
        }
        guard !text.isEmpty, let v = UInt32(text, radix: 8), v <= 0o7777 else {
            throw error("invalid mode \"\(text)\" (expected octal such as 0755)")
        }
        return v
    }

    private func id(_ values: [String: RawValue], _ key: String) throws -> UInt32? {
        guard let s = try string(values, key) else { return nil }
        guard let v = UInt32(s) else { throw error("invalid \(key) \"\(s)\" (expected a number)") }
        return v
    }
}

/// Byte sizes as users write them: `65536`, `64k`, `64m`, `1g`, `10GB`, `1.5g`.
public enum ByteSize {
    public static func parse(_ text: String) -> UInt64? {
        var s = text.trimmingWhitespace().lowercased()
        if s.hasSuffix("ib") { s.removeLast(2) } else if s.hasSuffix("b") { s.removeLast() }
        var multiplier: Double = 1
        if let last = s.last, let m = ["k": 1024.0, "m": 1024.0 * 1024, "g": 1024.0 * 1024 * 1024,
                                       "t": 1024.0 * 1024 * 1024 * 1024][String(last)] {
            multiplier = m
            s.removeLast()
        }
        guard let v = Double(s), v > 0, v.isFinite, s.allSatisfy({ $0.isNumber || $0 == "." }) else { return nil }
        let bytes = v * multiplier
        guard bytes < Double(UInt64.max) else { return nil }
        return UInt64(bytes.rounded())
    }

    /// Short human form (`1.5G`, `12M`, `512B`) for tables.
    public static func format(_ bytes: UInt64) -> String {
        let units = ["B", "K", "M", "G", "T"]
        var v = Double(bytes)
        var i = 0
        while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
        return i == 0 ? "\(bytes)B" : fixedPoint(v, decimals: v < 10 ? 1 : 0) + units[i]
    }
}

