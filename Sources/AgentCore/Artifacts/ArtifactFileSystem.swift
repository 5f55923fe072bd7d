#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: what was attempted on which (relative) path, and errno.
struct ArtifactSystemCallError: Error, Sendable {
    var operation: String
    var path: String
    var errno: Int32
}

/// File-descriptor-relative file operations that never follow a symlink: every path is
/// opened one component at a time from a directory fd with `O_NOFOLLOW`, so neither a
/// symlink in the workspace nor one planted in the output can redirect a read or a write.
enum ArtifactFS {
    static let directoryFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC

    /// Opens `components` below `base` as a directory, refusing symlinks on the way.
    static func openDirectory(_ base: Int32, _ components: [String], display: String) throws(ArtifactSystemCallError) -> Int32 {
        var fd = dup(base)
        guard fd >= 0 else { throw ArtifactSystemCallError(operation: "dup", path: display, errno: errno) }
        for name in components {
            let next = openat(fd, name, directoryFlags)
            let err = errno
            close(fd)
            guard next >= 0 else { throw ArtifactSystemCallError(operation: "open directory", path: display, errno: err) }
            fd = next
        }
        return fd
    }

    /// Creates (if needed) and opens `components` below `base`; an existing symlink fails with ELOOP/ENOTDIR.
    static func makeDirectories(_ base: Int32, _ components: [String], display: String) throws(ArtifactSystemCallError) -> Int32 {
        var fd = dup(base)
        guard fd >= 0 else { throw ArtifactSystemCallError(operation: "dup", path: display, errno: errno) }
        for name in components {
            if mkdirat(fd, name, 0o755) != 0, errno != EEXIST {
                let err = errno
                close(fd)
                throw ArtifactSystemCallError(operation: "mkdir", path: display, errno: err)
            }
            let next = openat(fd, name, directoryFlags)
            let err = errno
            close(fd)
            guard next >= 0 else { throw ArtifactSystemCallError(operation: "open directory", path: display, errno: err) }
            fd = next
        }
        return fd
    }

    /// The names in a directory, without `.` and `..`, sorted for a stable manifest.
    static func list(_ dirfd: Int32, display: String) throws(ArtifactSystemCallError) -> [String] {
        let copy = dup(dirfd)
        guard copy >= 0, let dir = fdopendir(copy) else {
            throw ArtifactSystemCallError(operation: "read directory", path: display, errno: errno)
        }
        defer { closedir(dir) }
        rewinddir(dir)
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// `lstat` relative to a directory fd.
    static func lstat(_ dirfd: Int32, _ name: String) -> stat? {
        var st = stat()
        return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? st : nil
    }

    static func readLink(_ dirfd: Int32, _ name: String) -> String? {
        var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = buffer.withUnsafeMutableBufferPointer { b in
            b.baseAddress!.withMemoryRebound(to: CChar.self, capacity: b.count) { readlinkat(dirfd, name, $0, b.count - 1) }
        }
        guard n >= 0 else { return nil }
        return String(decoding: buffer[..<n], as: UTF8.self)
    }

    static func isDirectory(_ st: stat) -> Bool { st.st_mode & S_IFMT == S_IFDIR }
    static func isRegular(_ st: stat) -> Bool { st.st_mode & S_IFMT == S_IFREG }
    static func isSymlink(_ st: stat) -> Bool { st.st_mode & S_IFMT == S_IFLNK }

    /// Removes `name` below `parent` and everything under it, never following symlinks;
    /// iterative (`TreeWalk`), so depth is no limit.
    static func removeTree(_ parent: Int32, _ name: String) {
        let walk = TreeWalk(visit: { dirfd, entry, st, _ in
            if isDirectory(st) { return true }
            unlinkat(dirfd, entry, 0)
            return false
        }, leave: { dirfd, entry, _, _ in
            unlinkat(dirfd, entry, AT_REMOVEDIR)
        })
        walk.run(at: parent, name)
    }

    /// Whether a symlink at `linkDir`/… with target `target` resolves inside the root
    /// `rootfd`. Absolute targets count as outside: the container sees the workspace at
    /// `/workspace`, the host somewhere else, so no absolute target means the same to both.
    /// Symlinks met on the way are expanded (up to 40, like the kernel); a target that
    /// does not exist is judged by its path alone.
    static func resolvesInside(rootfd: Int32, linkDir: [String], target: String, depth: Int = 0) -> Bool {
        var stack = linkDir
        return resolve(rootfd: rootfd, stack: &stack, target: target, depth: depth)
    }

    private static func resolve(rootfd: Int32, stack: inout [String], target: String, depth: Int) -> Bool {
        guard depth < 40, !target.hasPrefix("/"), !target.isEmpty else { return false }
        for part in target.split(separator: "/", omittingEmptySubsequences: true) {
            let name = String(part)
            if name == "." { continue }
            if name == ".." {
                guard !stack.isEmpty else { return false }
                stack.removeLast()
                continue
            }
            let path = (stack + [name]).joined(separator: "/")
            if let st = lstat(rootfd, path), isSymlink(st) {
                guard let inner = readLink(rootfd, path) else { return false }
                guard resolve(rootfd: rootfd, stack: &stack, target: inner, depth: depth + 1) else { return false }
            } else {
                stack.append(name)
            }
        }
        return true
    }
}
