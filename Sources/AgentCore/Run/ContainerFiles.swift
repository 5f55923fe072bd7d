import CAgentSandbox
import AgentSupport
import FoundationEssentials
import Glibc

/// Reads files out of a still-alive container (test reports) without ever leaving it.
///
/// Matching uses the artifact collector's glob engine (`GlobSearch`: one `O_NOFOLLOW`
/// component at a time from the container's root, so a symlink planted by the job is never
/// followed). Each selected file is then opened relative to the root descriptor with
/// `openat2(RESOLVE_IN_ROOT)`, so even a path swapped after the scan resolves inside the
/// container.
enum ContainerFiles {
    struct File: Sendable {
        /// The path inside the container, e.g. `/tmp/reports/TEST-a.xml`.
        var path: String
        var data: Data
    }

    /// Largest report read (bigger files are skipped).
    static let maxFileBytes = 64 << 20

    /// Expands `patterns` (absolute inside the container, or relative to `base`) in the
    /// container whose root is `rootFD`; `rootPath` is the same root as a path
    /// (`/proc/PID/root`). Throws a `GlobPatternError` for a pattern with `..`.
    static func glob(rootFD: Int32, rootPath: String, patterns: [String], base: String) throws -> [File] {
        let relative = patterns.map { p in
            String((p.hasPrefix("/") ? p : base + "/" + p).drop { $0 == "/" })
        }
        return try GlobSearch.regularFiles(in: rootPath, matching: relative).compactMap { path in
            readFile(rootFD, path).map { File(path: "/" + path, data: $0) }
        }
    }

    private static func readFile(_ rootFD: Int32, _ path: String) -> Data? {
        let fd = agent_resolve_open_in_root(rootFD, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, Int(st.st_size) <= maxFileBytes else { return nil }
        return readUpTo(fd, limit: maxFileBytes).map { Data($0) }
    }
}
