import Glibc

/// Copies a tree (regular files, folders, symlinks) iteratively with `TreeWalk`, so depth is
/// no limit and a FIFO, socket or device in the source is skipped with a warning instead of
/// blocking the agent (FileManager.copyItem opened a FIFO and waited forever for a writer).
/// Files are opened `O_NONBLOCK|O_NOFOLLOW` and checked with `fstat` before reading.
/// Destination folders are held in a bounded window of descriptors like the source's.
struct TreeCopy {
    /// What was skipped, one message per entry (relative to the source).
    private(set) var warnings: [String] = []

    /// Copies `source` (a folder) to `destination`, which must not exist. Throws when the
    /// destination cannot be created; entries that cannot be copied become warnings.
    static func copy(_ source: String, to destination: String) throws -> [String] {
        var warnings: [String] = []
        var failure: Int32?
        // dst[d]: descriptor of the destination folder at depth d (-1 when closed to stay
        // under the limit; re-opened through `..` of its child, which is ours and fresh).
        var dst: [Int32] = []
        var names: [String] = []  // relative path, for messages
        var modes: [mode_t] = []
        func path(_ name: String) -> String { (names.dropFirst() + [name]).joined(separator: "/") }
        var openCount = 0
        var lowestOpen = 1  // dst[1..<lowestOpen] are closed (dst[0] stays open)

        let walk = TreeWalk(visit: { parent, name, st, depth in
            guard failure == nil else { return false }
            let type = st.st_mode & S_IFMT
            if depth == 0 {
                guard type == S_IFDIR, mkdir(destination, 0o700) == 0 else { failure = errno; return false }
                let fd = open(destination, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard fd >= 0 else { failure = errno; return false }
                dst = [fd]; names = [""]; modes = [st.st_mode & 0o7777]; openCount = 1
                return true
            }
            let out = dst[depth - 1]
            switch type {
            case S_IFDIR:
                guard mkdirat(out, name, 0o700) == 0 else {
                    warnings.append("\(path(name)): cannot create folder (\(String(cString: strerror(errno)))); skipped")
                    return false
                }
                let fd = openat(out, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard fd >= 0 else { return false }
                dst.removeSubrange(depth...); names.removeSubrange(depth...); modes.removeSubrange(depth...)
                dst.append(fd); names.append(name); modes.append(st.st_mode & 0o7777)
                openCount += 1
                // Over the limit: close the shallowest open folder but the root.
                while openCount > TreeWalk.maxOpenDescriptors, lowestOpen < depth {
                    if dst[lowestOpen] >= 0 { close(dst[lowestOpen]); dst[lowestOpen] = -1; openCount -= 1 }
                    lowestOpen += 1
                }
                return true
            case S_IFREG:
                if let problem = copyFile(parent, name, to: out, mode: st.st_mode & 0o7777) {
                    warnings.append("\(path(name)): \(problem); skipped")
                }
            case S_IFLNK:
                var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
                let n = readlinkat(parent, name, &buf, buf.count - 1)
                if n < 0 || symlinkat(String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self), out, name) != 0 {
                    warnings.append("\(path(name)): cannot copy symlink (\(String(cString: strerror(errno)))); skipped")
                }
            default:
                warnings.append("\(path(name)): not a regular file, folder or symlink (FIFO, socket or device); skipped")
            }
            return false
        }, leave: { _, _, _, depth in
            guard failure == nil, depth < dst.count else { return }
            if depth > 0 && dst[depth - 1] < 0 {
                dst[depth - 1] = openat(dst[depth], "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                if dst[depth - 1] >= 0 { openCount += 1 }
                lowestOpen = min(lowestOpen, depth - 1)
            }
            fchmod(dst[depth], modes[depth])
            close(dst[depth])
            dst[depth] = -1
            openCount -= 1
        })
        walk.run(source)
        for fd in dst where fd >= 0 { close(fd) }
        if let failure { throw StateError(path: destination, errno: failure, message: "cannot copy \(source)") }
        return warnings
    }

    /// Copies one regular file; nil on success, else why not.
    private static func copyFile(_ parent: Int32, _ name: String, to out: Int32, mode: mode_t) -> String? {
        // O_NONBLOCK: a file swapped for a FIFO since the fstatat must not block us.
        let input = openat(parent, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard input >= 0 else { return "cannot open (\(String(cString: strerror(errno))))" }
        defer { close(input) }
        var st = stat()
        guard fstat(input, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return "no longer a regular file" }
        let output = openat(out, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard output >= 0 else { return "cannot create (\(String(cString: strerror(errno))))" }
        defer { close(output) }
        var buffer = [UInt8](repeating: 0, count: 128 * 1024)
        while true {
            let n = read(input, &buffer, buffer.count)
            if n == 0 { break }
            if n < 0 { if errno == EINTR { continue }; return "cannot read (\(String(cString: strerror(errno))))" }
            var off = 0
            while off < n {
                let w = buffer.withUnsafeBytes { write(output, $0.baseAddress! + off, n - off) }
                if w < 0 { if errno == EINTR { continue }; return "cannot write (\(String(cString: strerror(errno))))" }
                off += w
            }
        }
        fchmod(output, mode)
        return nil
    }
}
