import CAgentSandbox
import Foundation

/// Reads files out of a container's root (test reports) without ever leaving it.
///
/// Directories are opened from the container's root descriptor with `openat2` and
/// `RESOLVE_IN_ROOT`, so `..` and absolute symlinks resolve inside the container; below
/// that every component is opened with `O_NOFOLLOW`, so a symlink planted by the job is
/// never followed at all.
enum ContainerFiles {
    struct File: Sendable {
        var path: String
        var data: Data
    }

    /// Largest report read (bigger files are skipped with their name in the result).
    static let maxFileBytes = 64 << 20

    /// Expands `patterns` (absolute inside the container, or relative to `base`) with
    /// `*`, `?`, `[...]` per segment and `**` for any depth.
    static func glob(rootFD: Int32, patterns: [String], base: String) -> [File] {
        var out: [File] = []
        var seen = Set<String>()
        for pattern in patterns {
            let absolute = pattern.hasPrefix("/") ? pattern : base + "/" + pattern
            let segments = absolute.split(separator: "/").map(String.init)
            // The fixed prefix (no glob characters) is resolved in one openat2 call.
            let firstGlob = segments.firstIndex { $0.contains(where: { "*?[".contains($0) }) } ?? segments.count
            let prefix = segments[..<firstGlob].joined(separator: "/")
            let rest = Array(segments[firstGlob...])
            if rest.isEmpty {
                // A plain file path.
                let dir = (prefix as NSString).deletingLastPathComponent
                let name = (prefix as NSString).lastPathComponent
                let dfd = openInRoot(rootFD, dir)
                guard dfd >= 0 else { continue }
                defer { close(dfd) }
                if let data = readFile(dfd, name), seen.insert("/" + prefix).inserted {
                    out.append(File(path: "/" + prefix, data: data))
                }
                continue
            }
            let dfd = openInRoot(rootFD, prefix)
            guard dfd >= 0 else { continue }
            walk(dfd: dfd, path: "/" + prefix, pattern: rest, out: &out, seen: &seen)
            close(dfd)
        }
        return out
    }

    private static func walk(dfd: Int32, path: String, pattern: [String], out: inout [File], seen: inout Set<String>) {
        guard let head = pattern.first else { return }
        let tail = Array(pattern.dropFirst())
        if head == "**" {
            // `**` matches zero segments here, or one more directory level.
            walk(dfd: dfd, path: path, pattern: tail, out: &out, seen: &seen)
            for (name, isDir) in entries(dfd) where isDir {
                let sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard sub >= 0 else { continue }
                walk(dfd: sub, path: path + "/" + name, pattern: pattern, out: &out, seen: &seen)
                close(sub)
            }
            return
        }
        for (name, isDir) in entries(dfd) where fnmatch(head, name, FNM_PERIOD) == 0 {
            let full = path + "/" + name
            if tail.isEmpty {
                if !isDir, seen.insert(full).inserted, let data = readFile(dfd, name) {
                    out.append(File(path: full, data: data))
                }
            } else if isDir {
                let sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard sub >= 0 else { continue }
                walk(dfd: sub, path: full, pattern: tail, out: &out, seen: &seen)
                close(sub)
            }
        }
    }

    /// Directory entries (name, is a real directory), sorted; symlinks count as neither.
    private static func entries(_ dfd: Int32) -> [(String, Bool)] {
        let dup = fcntl(dfd, F_DUPFD_CLOEXEC, 0)
        guard dup >= 0, let dir = fdopendir(dup) else { return [] }
        defer { closedir(dir) }
        rewinddir(dir)
        var result: [(String, Bool)] = []
        while let ent = readdir(dir) {
            let name = withUnsafePointer(to: ent.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name == "." || name == ".." { continue }
            var st = stat()
            guard fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            let type = st.st_mode & S_IFMT
            if type == S_IFDIR { result.append((name, true)) } else if type == S_IFREG { result.append((name, false)) }
        }
        return result.sorted { $0.0 < $1.0 }
    }

    private static func readFile(_ dfd: Int32, _ name: String) -> Data? {
        let fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, Int(st.st_size) <= maxFileBytes else { return nil }
        var data = Data(count: Int(st.st_size))
        var got = 0
        let ok = data.withUnsafeMutableBytes { buf -> Bool in
            while got < buf.count {
                let n = read(fd, buf.baseAddress! + got, buf.count - got)
                if n <= 0 { return n == 0 }
                got += n
            }
            return true
        }
        guard ok else { return nil }
        return data.prefix(got)
    }

    /// `openat2(rootFD, path, O_DIRECTORY, RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS)`.
    static func openInRoot(_ rootFD: Int32, _ path: String) -> Int32 {
        agent_resolve_open_in_root(rootFD, path.isEmpty ? "." : path, O_RDONLY | O_DIRECTORY)
    }
}
