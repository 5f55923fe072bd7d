/// The lexical side of a `COPY`/`ADD` source in the build context: the context is the
/// root, so `/src` and `src` name the same file, `.` and empty parts drop out, and a `..`
/// that climbs above the root is refused (Docker's "forbidden path outside the build
/// context"), not silently clamped to the root as BuildKit does. Symlinks are the
/// executor's to refuse: it opens the result beneath the context folder by descriptor
/// (openat2 RESOLVE_BENEATH).
public enum ContextPaths {
    /// The source as a path relative to the context (`""` for the context itself), or nil
    /// when it climbs out of it. Wildcards are kept for the executor's glob.
    public static func relative(_ source: String) -> String? {
        var parts: [Substring] = []
        for part in source.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." {
                guard !parts.isEmpty else { return nil }
                parts.removeLast()
                continue
            }
            parts.append(part)
        }
        return parts.joined(separator: "/")
    }

    /// Checks every context source of `copy` (not those of `--from`, not ADD's URLs);
    /// throws naming the source when one leaves the context.
    static func check(_ copy: CopyCommand, keyword: String) throws(DockerfileError) {
        guard copy.from == nil else { return }
        for case .local(let s) in copy.classifiedSources where relative(s) == nil {
            throw DockerfileError(.arguments, "\(keyword) source \"\(s)\" is outside the build context")
        }
    }
}
