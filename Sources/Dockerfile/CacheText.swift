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
