import AgentSupport
import FoundationEssentials
import Glibc

/// The context's `.dockerignore`, read once by descriptor at the start of a build.
/// Patterns as Docker reads them: one per line, `#` comments, `!` re-includes, paths
/// cleaned and relative to the context root, `*`/`?`/`[...]` within a component, `**`
/// any number of components; a pattern matching a folder excludes what is below it; the
/// last matching pattern decides.
struct BuildIgnore: Sendable {
    struct Pattern: Sendable {
        var parts: [String]
        var negated: Bool
    }
    let patterns: [Pattern]

    init(lines: [String]) {
        var out: [Pattern] = []
        for raw in lines {
            var line = raw.trimmingWhitespace()
            if line.isEmpty || line.hasPrefix("#") { continue }
            var negated = false
            if line.hasPrefix("!") { negated = true; line = String(line.dropFirst()).trimmingWhitespace() }
            var parts: [String] = []
            for c in line.split(separator: "/") where c != "." {
                if c == ".." { if !parts.isEmpty { parts.removeLast() } } else { parts.append(String(c)) }
            }
            if !parts.isEmpty { out.append(Pattern(parts: parts, negated: negated)) }
        }
        patterns = out
    }

    /// Reads `.dockerignore` beneath the context folder `fd` (a missing file ignores nothing).
    init(contextFD fd: Int32) {
        let f = openat(fd, ".dockerignore", O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard f >= 0 else { self.init(lines: []); return }
        defer { close(f) }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while bytes.count < 1 << 20 {
            let n = read(f, &buf, buf.count)
            if n <= 0 { break }
            bytes += buf[0..<n]
        }
        self.init(lines: String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init))
    }

    /// Whether `path` (relative, `/`-separated) is excluded.
    func excluded(_ path: String) -> Bool {
        let parts = path.split(separator: "/").map(String.init)
        guard !parts.isEmpty else { return false }
        var result = false
        for p in patterns {
            // A pattern excludes the path itself or any folder above it.
            var hit = false
            for n in 1...parts.count where Self.match(p.parts[...], parts[..<n]) { hit = true; break }
            if hit { result = !p.negated }
        }
        return result
    }

    static func match(_ pattern: ArraySlice<String>, _ path: ArraySlice<String>) -> Bool {
        guard let first = pattern.first else { return path.isEmpty }
        if first == "**" {
            let rest = pattern.dropFirst()
            var p = path
            while true {
                if match(rest, p) { return true }
                guard !p.isEmpty else { return false }
                p = p.dropFirst()
            }
        }
        guard let head = path.first, fnmatch(first, head, 0) == 0 else { return false }
        return match(pattern.dropFirst(), path.dropFirst())
    }
}
