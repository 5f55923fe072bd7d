import Glibc

// Path arithmetic on strings, as NSString offered it. The agent links FoundationEssentials
// only (Foundation's ICU half costs milliseconds of start-up on every `agent exec`), and
// FoundationEssentials keeps these helpers internal.

package extension String {
    /// The last component: `/a/b/c.json` -> `c.json`, `/a/b/` -> `b`, `/` -> `/`.
    var lastPathComponent: String {
        let trimmed = trimmingTrailingSlashes
        if trimmed == "/" { return "/" }
        guard let slash = trimmed.lastIndex(of: "/") else { return trimmed }
        return String(trimmed[trimmed.index(after: slash)...])
    }

    /// Everything before the last component: `/a/b/c` -> `/a/b`, `/a` -> `/`, `c` -> ``.
    var deletingLastPathComponent: String {
        let trimmed = trimmingTrailingSlashes
        if trimmed == "/" { return "/" }
        guard let slash = trimmed.lastIndex(of: "/") else { return "" }
        if slash == trimmed.startIndex { return "/" }
        return String(trimmed[..<slash]).trimmingTrailingSlashes
    }

    /// `self` joined to `component` with exactly one slash between them.
    func appendingPathComponent(_ component: String) -> String {
        if isEmpty { return component }
        if component.isEmpty { return self }
        return (hasSuffix("/") ? String(dropLast()) : self) + (component.hasPrefix("/") ? component : "/" + component)
    }

    /// An absolute path with `.`, `..` and repeated slashes removed, without touching
    /// the file system (symlinks are not resolved). A relative path is made absolute
    /// against `base` first.
    func lexicallyNormalizedPath(relativeTo base: String = "/") -> String {
        let full = hasPrefix("/") ? self : base.appendingPathComponent(self)
        var parts: [Substring] = []
        for part in full.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." { if !parts.isEmpty { parts.removeLast() }; continue }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }

    private var trimmingTrailingSlashes: String {
        var s = self
        while s.count > 1 && s.hasSuffix("/") { s.removeLast() }
        return s
    }
}

/// True when `path` names a directory (following symlinks, as `FileManager.fileExists` did).
package func isDirectory(atPath path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
}
