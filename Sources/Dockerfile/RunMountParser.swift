extension RunMount {
    /// The keys a `--mount` spec may use, for "did you mean".
    static let allKeys = ["type", "from", "source", "target", "readonly", "id", "sharing", "required", "size",
                          "mode", "uid", "gid", "src", "dst", "destination", "ro", "rw", "readwrite", "env"]

    /// Parses one `--mount=` value (CSV `key=value` fields, BuildKit's keys). `expand`
    /// expands each value; with `deferVariables` (at parse time, before the stage's
    /// variables are known) values holding `$` are kept as written and not checked yet.
    static func parse(_ spec: String, deferVariables: Bool,
                      expand: (String) throws(DockerfileError) -> String) throws(DockerfileError) -> RunMount {
        let fields: [String]
        do { fields = try CSVFields.split(spec) } catch {
            throw DockerfileError(.mount, "failed to parse csv mounts: \(error.message) in --mount=\(spec)")
        }
        var m = RunMount()
        var roAuto = true
        var typeDeferred = false
        for field in fields {
            let key: String
            var value: String
            let hasValue: Bool
            if let eq = field.firstIndex(of: "=") {
                key = field[..<eq].lowercased()
                value = String(field[field.index(after: eq)...])
                hasValue = true
            } else {
                key = field.lowercased()
                value = ""
                hasValue = false
            }
            if !hasValue {
                switch key {
                case "readonly", "ro": m.readOnly = true; roAuto = false; continue
                case "readwrite", "rw": m.readOnly = false; roAuto = false; continue
                case "required":
                    guard typeDeferred || m.kind == .secret || m.kind == .ssh else {
                        throw DockerfileError(.mount, "unexpected key 'required' for mount type '\(m.kind.rawValue)'")
                    }
                    m.required = true
                    continue
                default:
                    throw DockerfileError(.mount, "invalid field '\(field)' must be a key=value pair")
                }
            }
            let deferred = deferVariables && value.contains("$")
            if key == "from" && value.contains("$") {
                if let idx = value.firstIndex(of: "$"), value.index(after: idx) != value.endIndex {
                    throw DockerfileError(.mount, "'from' doesn't support variable expansion, define alias stage instead")
                }
            }
            if !deferred { value = try expand(value) }
            func bool() throws(DockerfileError) -> Bool {
                switch value.lowercased() {
                case "1", "t", "true": return true
                case "0", "f", "false": return false
                default: throw DockerfileError(.mount, "invalid value for \(key): \(value)")
                }
            }
            func number(_ radix: Int, _ what: String) throws(DockerfileError) -> UInt32? {
                if deferred { return nil }
                guard let n = UInt32(value, radix: radix) else {
                    throw DockerfileError(.mount, "invalid value \(value) for \(what)")
                }
                return n
            }
            switch key {
            case "type":
                if deferred { typeDeferred = true; continue }
                guard let k = Kind(rawValue: value.lowercased()) else {
                    var msg = "unsupported mount type \"\(value)\""
                    if let s = Suggest.closest(value, among: Kind.allCases.map(\.rawValue)) { msg += " (did you mean \(s)?)" }
                    throw DockerfileError(.mount, msg)
                }
                m.kind = k
            case "from": m.from = value
            case "source", "src": m.source = value
            case "target", "dst", "destination": m.target = value
            case "readonly", "ro":
                if !deferred { m.readOnly = try bool() }
                roAuto = false
            case "readwrite", "rw":
                if !deferred { m.readOnly = try !bool() }
                roAuto = false
            case "required":
                guard typeDeferred || m.kind == .secret || m.kind == .ssh else {
                    throw DockerfileError(.mount, "unexpected key 'required' for mount type '\(m.kind.rawValue)'")
                }
                if !deferred { m.required = try bool() }
            case "size":
                guard typeDeferred || m.kind == .tmpfs else {
                    throw DockerfileError(.mount, "unexpected key 'size' for mount type '\(m.kind.rawValue)'")
                }
                if !deferred {
                    guard let n = ByteSize.parse(value) else { throw DockerfileError(.mount, "invalid value for size: \(value)") }
                    m.sizeLimit = n
                }
            case "id": m.id = value
            case "sharing":
                if deferred { continue }
                guard let s = Sharing(rawValue: value.lowercased()) else {
                    var msg = "unsupported sharing value \"\(value)\""
                    if let s = Suggest.closest(value, among: Sharing.allCases.map(\.rawValue)) { msg += " (did you mean \(s)?)" }
                    throw DockerfileError(.mount, msg)
                }
                m.sharing = s
            case "mode": m.mode = try number(8, "mode")
            case "uid": m.uid = try number(10, "uid")
            case "gid": m.gid = try number(10, "gid")
            case "env": m.env = value
            default:
                var msg = "unexpected key '\(key)' in '\(field)'"
                if let s = Suggest.closest(key, among: allKeys) { msg += " (did you mean \(s)?)" }
                throw DockerfileError(.mount, msg)
            }
        }
        if typeDeferred { return m }
        let fileInfoAllowed = m.kind == .secret || m.kind == .ssh || m.kind == .cache
        if !fileInfoAllowed {
            if m.mode != nil { throw DockerfileError(.mount, "mode not allowed for \"\(m.kind.rawValue)\" type mounts") }
            if m.uid != nil { throw DockerfileError(.mount, "uid not allowed for \"\(m.kind.rawValue)\" type mounts") }
            if m.gid != nil { throw DockerfileError(.mount, "gid not allowed for \"\(m.kind.rawValue)\" type mounts") }
        }
        if roAuto { m.readOnly = !(m.kind == .cache || m.kind == .tmpfs) }
        if m.kind == .secret {
            if m.from != nil { throw DockerfileError(.mount, "secret mount should not have a from") }
            if m.sharing != nil { throw DockerfileError(.mount, "secret mount should not define sharing") }
            if (m.source ?? "").isEmpty && (m.target ?? "").isEmpty && (m.id ?? "").isEmpty && m.env == nil {
                throw DockerfileError(.mount, "invalid secret mount. one of source, target required")
            }
            if !(m.source ?? "").isEmpty && !(m.id ?? "").isEmpty {
                throw DockerfileError(.mount, "both source and id can't be set")
            }
        }
        if m.sharing != nil && m.kind != .cache {
            throw DockerfileError(.mount, "invalid cache sharing set for \(m.kind.rawValue) mount")
        }
        if m.kind != .secret && m.kind != .ssh && (m.target ?? "").isEmpty {
            throw DockerfileError(.mount, "mount type=\(m.kind.rawValue) needs a target (target=, dst= or destination=)")
        }
        return m
    }
}

/// Sizes as docker's go-units RAMInBytes reads them: `64m`, `1g`, `512k`, `100` (bytes);
/// binary multiples, an optional `b`/`ib` suffix.
enum ByteSize {
    static func parse(_ s: String) -> Int64? {
        var t = s.lowercased().trimmingBlanks()
        for suffix in ["ib", "b"] where t.hasSuffix(suffix) && t.count > suffix.count {
            t.removeLast(suffix.count)
            break
        }
        var mult: Int64 = 1
        if let last = t.last, let m = ["k": Int64(1) << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50][String(last)] {
            mult = m
            t.removeLast()
        }
        guard let n = Double(t), n >= 0, n * Double(mult) < 9e18 else { return nil }
        return Int64(n * Double(mult))
    }
}

/// Comma-separated fields as Go's encoding/csv reads one record: `"a,b"` quotes a comma,
/// `""` inside quotes is one quote.
enum CSVFields {
    struct Failure: Error { var message: String }

    static func split(_ s: String) throws(Failure) -> [String] {
        var fields: [String] = []
        var cur = ""
        var inQuotes = false
        var atFieldStart = true
        var chars = Array(s)[...]
        while let c = chars.popFirst() {
            if inQuotes {
                if c == "\"" {
                    if chars.first == "\"" { cur.append("\""); chars = chars.dropFirst() } else { inQuotes = false }
                } else { cur.append(c) }
                continue
            }
            if c == "," { fields.append(cur); cur = ""; atFieldStart = true; continue }
            if c == "\"" && atFieldStart { inQuotes = true; atFieldStart = false; continue }
            if c == "\"" { throw Failure(message: "bare \" in non-quoted field") }
            atFieldStart = false
            cur.append(c)
        }
        if inQuotes { throw Failure(message: "extraneous or missing \" in quoted field") }
        fields.append(cur)
        return fields.filter { !$0.isEmpty }
    }
}
