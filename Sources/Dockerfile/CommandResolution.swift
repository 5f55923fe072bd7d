/// A command ready to execute: the argv and the files it needs mounted (a heredoc
/// script with a `#!` line becomes a file under `/dev/pipes/`, as BuildKit does).
public struct ResolvedCommand: Sendable, Equatable {
    /// The program and its arguments.
    public var arguments: [String]
    /// Files to mount read-only before running.
    public var files: [InlineFile]
}

/// A file made from a heredoc.
public struct InlineFile: Sendable, Equatable {
    /// Where it is mounted (`/dev/pipes/EOF`).
    public var path: String
    public var contents: String
    /// Its mode (0755 for a script).
    public var mode: UInt32
}

extension CommandLine {
    /// The argv of this command in `shell`: exec form as is; shell form `shell + [text]`.
    /// An empty shell-form command gives `shell + [""]`, as BuildKit stores it.
    public func withShell(_ shell: [String]) -> [String] {
        guard prependsShell else { return arguments }
        return shell + [arguments.first ?? ""]
    }

    /// The argv of a `RUN`, heredocs resolved as BuildKit does: `RUN <<EOF` alone runs the
    /// body as the shell's script (a body starting `#!` is written to `/dev/pipes/EOF`,
    /// mode 0755, and run); any other command with heredocs (`RUN python3 <<EOF`, several
    /// heredocs) is given whole to the shell, which reads the bodies itself.
    public func resolved(shell: [String]) -> ResolvedCommand {
        guard prependsShell, !heredocs.isEmpty, let first = arguments.first else {
            return ResolvedCommand(arguments: withShell(shell), files: [])
        }
        if HeredocMarker.parse(first) != nil, let doc = heredocs.first {
            let data = doc.text
            if data.hasPrefix("#!") {
                let path = "/dev/pipes/" + doc.name
                return ResolvedCommand(arguments: shell + [path], files: [InlineFile(path: path, contents: data, mode: 0o755)])
            }
            return ResolvedCommand(arguments: shell + [data], files: [])
        }
        var full = first
        for doc in heredocs { full += "\n" + doc.content + doc.name }
        return ResolvedCommand(arguments: shell + [full], files: [])
    }
}

/// Folder arithmetic of `WORKDIR`.
enum PathJoin {
    /// `WORKDIR p`: an absolute `p` replaces, a relative one joins the current folder
    /// (`/` when unset); the result is cleaned (`.`, `..`, doubled slashes).
    static func normalizeWorkdir(current: String, _ p: String) -> String {
        let joined = p.hasPrefix("/") ? p : (current.isEmpty ? "/" : current) + "/" + p
        return clean(joined)
    }

    /// Go's path.Clean for absolute paths.
    static func clean(_ p: String) -> String {
        var parts: [Substring] = []
        for part in p.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." { if !parts.isEmpty { parts.removeLast() }; continue }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }
}

/// `STOPSIGNAL` values: a number 1–64, or a signal name with or without `SIG`.
enum Signals {
    static let names: Set<String> = ["ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
                                     "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
                                     "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ"]

    static func isValid(_ s: String) -> Bool {
        if let n = Int(s) { return (1...64).contains(n) }
        var name = s.uppercased()
        if name.hasPrefix("SIG") { name.removeFirst(3) }
        if names.contains(name) { return true }
        // RTMIN+n / RTMAX-n
        for base in ["RTMIN", "RTMAX"] where name.hasPrefix(base) {
            let rest = name.dropFirst(base.count)
            if rest.isEmpty { return true }
            if let n = Int(rest.dropFirst()), (rest.first == "+" || rest.first == "-"), (0...30).contains(n) { return true }
        }
        return false
    }
}

/// `EXPOSE` ports: `80`, `80/tcp`, `53/udp`, `8000-8002` (expanded, at most 1 024 ports
/// per instruction, so a range cannot blow up the config).
enum PortSpec {
    static let maxPorts = 1024

    static func parse(_ words: [String]) throws(DockerfileError) -> [String] {
        var out: [String] = []
        for w in words {
            let lower = w.lowercased()
            let parts = lower.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            let proto = parts.count == 2 ? String(parts[1]) : "tcp"
            guard ["tcp", "udp", "sctp"].contains(proto) else {
                throw DockerfileError(.arguments, "invalid proto: \(proto) in EXPOSE \(w)")
            }
            let range = parts[0].split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
            guard let lo = UInt16(range[0]), let hi = range.count == 2 ? UInt16(range[1]) : lo, lo <= hi else {
                throw DockerfileError(.arguments, "invalid port: \(w) in EXPOSE (a port is 0-65535, a range lo-hi)")
            }
            guard out.count + Int(hi - lo) + 1 <= maxPorts else {
                throw DockerfileError(.tooLarge, "EXPOSE names more than \(maxPorts) ports")
            }
            for p in lo...hi { out.append("\(p)/\(proto)") }
        }
        return Array(Set(out)).sorted()
    }
}

/// Canonical lines for cache keys.
enum CacheText {
    /// A value quoted so no newline or quote in it can start another line.
    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\u{0}": out += "\\0"
            default:
                if u.value < 0x20 { out += "\\u{\(String(u.value, radix: 16))}" } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }

    static func list(_ name: String, _ values: [String]) -> String {
        name + "=[" + values.map(quote).joined(separator: ",") + "]"
    }

    static func optional(_ name: String, _ v: String?) -> String {
        name + "=" + (v.map(quote) ?? "nil")
    }

    static func describe(_ c: Command) -> [String] {
        switch c {
        case .from(let f): return [optional("image", f.image), optional("platform", f.platform)]
        case .run(let r):
            var out = [list("argv", r.command.arguments), "shellform=\(r.command.prependsShell)"]
            out += r.command.heredocs.map { "heredoc=" + quote($0.name) + "," + quote($0.content) + ",\($0.expands),\($0.stripsTabs),\($0.fileDescriptor)" }
            out += r.mounts.map { "mount=" + mount($0) }
            out.append("network=" + (r.network?.rawValue ?? "default"))
            out.append("security=" + (r.security?.rawValue ?? "sandbox"))
            return out
        case .copy(let c), .add(let c):
            var out = [list("sources", c.sources), optional("dest", c.destination), optional("from", c.from),
                       optional("chown", c.chown), optional("chmod", c.chmod), "link=\(c.link)", "parents=\(c.parents)",
                       list("exclude", c.excludes), optional("checksum", c.checksum),
                       "keepgit=\(c.keepGitDir.map(String.init) ?? "nil")", "unpack=\(c.unpack.map(String.init) ?? "nil")"]
            out += c.inlineSources.map { "inline=" + quote($0.path) + "," + quote($0.data) }
            return out
        case .env(let kv), .label(let kv): return kv.map { "kv=" + quote($0.key) + "=" + quote($0.value) }
        case .arg(let a): return a.map { "arg=" + quote($0.name) + "=" + ($0.defaultValue.map(quote) ?? "nil") }
        case .workdir(let s), .user(let s), .stopSignal(let s), .onbuild(let s), .maintainer(let s): return [optional("value", s)]
        case .expose(let v), .volume(let v), .shell(let v): return [list("values", v)]
        case .cmd(let l), .entrypoint(let l): return [list("argv", l.arguments), "shellform=\(l.prependsShell)"]
        case .healthcheck(let h):
            return [list("test", h.test), "interval=\(h.interval),timeout=\(h.timeout),start=\(h.startPeriod),startinterval=\(h.startInterval),retries=\(h.retries)"]
        }
    }

    static func mount(_ m: RunMount) -> String {
        let fields: [(String, String?)] = [
            ("type", m.kind.rawValue), ("target", m.target), ("source", m.source), ("from", m.from), ("id", m.id),
            ("ro", String(m.readOnly)), ("sharing", m.sharing?.rawValue), ("required", String(m.required)),
            ("size", m.sizeLimit.map { String($0) }), ("mode", m.mode.map { String($0, radix: 8) }),
            ("uid", m.uid.map { String($0) }), ("gid", m.gid.map { String($0) }), ("env", m.env),
        ]
        return fields.map { $0.0 + ":" + ($0.1.map(quote) ?? "nil") }.joined(separator: ",")
    }
}
