// The values WORKDIR, STOPSIGNAL and EXPOSE check and normalise.

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
