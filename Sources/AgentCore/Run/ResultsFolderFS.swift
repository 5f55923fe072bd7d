import CAgentSys
#if canImport(Glibc)
import Glibc
#endif

/// Descriptor-relative file-system steps of `ResultsFolder`: every name is looked up under
/// an open directory, so a symlink swapped into a path later cannot redirect a write.
enum ResultsFS {
    /// Opens (creating when missing) each of `components` in turn under `start`, and returns
    /// the last one opened `O_RDONLY|O_DIRECTORY` (an `O_PATH` descriptor cannot be fsynced).
    /// With `follow` false a symlink anywhere is an error naming it; with `follow` true
    /// symlinks are followed (the operator's own path). `shown` is the path `start` stands
    /// for, used in errors. Does not close `start`.
    static func openDirectory(_ start: Int32, _ components: [String], follow: Bool, shown: String) throws -> Int32 {
        var fd = start
        var path = shown
        for name in components {
            path = path == "/" ? "/" + name : path + "/" + name
            let next = try openOrCreate(fd, name, follow: follow, shown: path)
            if fd != start { close(fd) }
            fd = next
        }
        // Reopen the last directory readable, for fsync and fdopendir; "." never follows.
        let readable = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        let err = errno
        if fd != start { close(fd) }
        guard readable >= 0 else { throw ResultsFolder.Failure.io("cannot open \(path)", errnoText(err)) }
        return readable
    }

    /// One component: open, else `mkdirat` and open again (another process may create it
    /// between the two calls: EEXIST is fine). `O_NOFOLLOW` on a symlink fails (ELOOP or
    /// ENOTDIR with `O_PATH|O_DIRECTORY`), so a failure is classified with `fstatat`.
    private static func openOrCreate(_ dir: Int32, _ name: String, follow: Bool, shown: String) throws -> Int32 {
        let flags = agent_o_path | O_DIRECTORY | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW)
        for attempt in 0..<2 {
            let fd = openat(dir, name, flags)
            if fd >= 0 { return fd }
            let err = errno
            if err == ENOENT && attempt == 0 {
                if mkdirat(dir, name, 0o755) != 0 && errno != EEXIST {
                    throw ResultsFolder.Failure.io("cannot create \(shown)", errnoText(errno))
                }
                continue
            }
            switch kind(dir, name) {
            case .symlink: throw ResultsFolder.Failure.symlink(shown)
            case .other: throw ResultsFolder.Failure.notADirectory(shown)
            default: throw ResultsFolder.Failure.io("cannot open \(shown)", errnoText(err))
            }
        }
        throw ResultsFolder.Failure.io("cannot open \(shown)", errnoText(ENOENT))
    }

    enum Kind { case missing, directory, symlink, other, unknown }

    /// What `name` under `dir` is, without following a symlink.
    static func kind(_ dir: Int32, _ name: String) -> Kind {
        var st = stat()
        if fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) != 0 { return errno == ENOENT ? .missing : .unknown }
        switch st.st_mode & S_IFMT {
        case S_IFDIR: return .directory
        case S_IFLNK: return .symlink
        default: return .other
        }
    }

    /// Whether directory `name` under `dir` has entries (opened with O_NOFOLLOW).
    static func isNonEmptyDirectory(_ dir: Int32, _ name: String) -> Bool {
        let fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0, let d = fdopendir(fd) else { return false }
        defer { closedir(d) }
        while let entry = readdir(d) {
            let n = entryName(entry)
            if n != "." && n != ".." { return true }
        }
        return false
    }

    /// Removes `name` under `dir` and everything in it, never following a symlink (a symlink
    /// is unlinked itself). Errors are ignored: this only cleans up.
    static func removeTree(_ dir: Int32, _ name: String) {
        if unlinkat(dir, name, 0) == 0 || (errno != EISDIR && errno != EPERM) { return }
        let fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd >= 0, let d = fdopendir(fd) {
            var names: [String] = []
            while let entry = readdir(d) {
                let n = entryName(entry)
                if n != "." && n != ".." { names.append(n) }
            }
            for n in names { removeTree(fd, n) }
            closedir(d)
        }
        unlinkat(dir, name, AT_REMOVEDIR)
    }

    /// fsyncs every regular file and directory below `fd` (directories after their files,
    /// so a directory's entries are durable once its own fsync returns), then `fd` itself.
    /// Returns the first errno, or 0.
    static func syncTree(_ fd: Int32) -> Int32 {
        var first: Int32 = 0
        let dupfd = dup(fd)
        if dupfd >= 0, let d = fdopendir(dupfd) {
            var entries: [(String, Bool)] = []
            while let entry = readdir(d) {
                let n = entryName(entry)
                if n == "." || n == ".." { continue }
                let type = entry.pointee.d_type
                if type == UInt8(DT_DIR) { entries.append((n, true)) } else if type == UInt8(DT_REG) { entries.append((n, false)) }
            }
            closedir(d)
            for (n, isDir) in entries {
                let child = openat(fd, n, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (isDir ? O_DIRECTORY : 0))
                guard child >= 0 else { continue }
                let r = isDir ? syncTree(child) : (fsync(child) == 0 ? 0 : errno)
                if first == 0 { first = r }
                close(child)
            }
        }
        if fsync(fd) != 0 && first == 0 { first = errno }
        return first
    }

    static func renameat2(_ fromDir: Int32, _ from: String, _ toDir: Int32, _ to: String, _ flags: UInt32) -> Int32 {
        agent_renameat2(fromDir, from, toDir, to, flags) == 0 ? 0 : errno
    }

    private static func entryName(_ entry: UnsafeMutablePointer<dirent>) -> String {
        withUnsafePointer(to: entry.pointee.d_name) {
            $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
        }
    }

    static func errnoText(_ err: Int32) -> String { String(cString: strerror(err)) }
}
