import AgentSupport
import CAgentSys
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// Small file-system primitives the queue is built from. Every one works relative to an
/// open folder descriptor (see `QueueFolders`) and none follows a symlink, so a folder
/// swapped for a symlink after the agent opened the queue is never written through.
enum QueueFS {
    /// The largest job file (or other queue document) read; a larger one is refused with an
    /// error rather than cut short.
    static let maxJobFileBytes = 16 << 20

    /// `fstatat` without following, or nil when `name` does not exist in `dir`.
    static func lstat(_ dir: Int32, _ name: String) -> stat? {
        var st = stat()
        return fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? st : nil
    }

    static func isRegularFile(_ dir: Int32, _ name: String) -> Bool {
        guard let st = lstat(dir, name) else { return false }
        return (st.st_mode & S_IFMT) == S_IFREG
    }

    static func isDirectory(_ dir: Int32, _ name: String) -> Bool {
        guard let st = lstat(dir, name) else { return false }
        return (st.st_mode & S_IFMT) == S_IFDIR
    }

    static func exists(_ dir: Int32, _ name: String) -> Bool { lstat(dir, name) != nil }

    /// The names in folder `dir` (without `.` and `..`) as raw bytes: a name that is not
    /// UTF-8 must still be seen (and filed), not decoded into something that cannot be opened.
    static func listRaw(_ dir: Int32) -> [[UInt8]] {
        let copy = dup(dir)
        guard copy >= 0, let d = fdopendir(copy) else { return [] }
        defer { closedir(d) }
        rewinddir(d)
        var names: [[UInt8]] = []
        while let entry = readdir(d) {
            let bytes: [UInt8] = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                Array(raw.prefix(while: { $0 != 0 }))
            }
            if bytes != [0x2E] && bytes != [0x2E, 0x2E] { names.append(bytes) }
        }
        return names
    }

    /// The UTF-8 names in `dir`; others are left to the callers that file them.
    static func list(_ dir: Int32) -> [String] {
        listRaw(dir).compactMap { String(validating: $0, as: UTF8.self) }
    }

    /// Renames `from` in `fromDir` to `to` in `toDir` unless `to` exists. Returns 0 or an
    /// errno (EEXIST when taken).
    ///
    /// Uses `renameat2(RENAME_NOREPLACE)`; on file systems without it (NFS) regular files
    /// fall back to link + unlink, which is atomic on NFS too, and other entries to a plain
    /// rename after a check (which never replaces a non-empty folder; results are never empty).
    static func renameNoReplace(_ fromDir: Int32, _ from: String, _ toDir: Int32, _ to: String) -> Int32 {
        if agent_renameat2(fromDir, from, toDir, to, UInt32(AGENT_RENAME_NOREPLACE)) == 0 { return 0 }
        let e = errno
        if e != EINVAL && e != ENOSYS { return e }
        if !isRegularFile(fromDir, from) {
            if exists(toDir, to) { return EEXIST }
            if renameat(fromDir, from, toDir, to) == 0 { return 0 }
            let e = errno
            return e == ENOTEMPTY ? EEXIST : e
        }
        if linkat(fromDir, from, toDir, to, 0) == 0 {
            unlinkat(fromDir, from, 0)
            return 0
        }
        let le = errno
        if le == EEXIST { return EEXIST }
        // protected_hardlinks forbids linking another user's file: last resort is a
        // checked plain rename (a tiny window, only on file systems without renameat2).
        if exists(toDir, to) { return EEXIST }
        return renameat(fromDir, from, toDir, to) == 0 ? 0 : errno
    }

    /// Writes `data` to `dir/name` crash-safely: a temporary sibling (a short name of its
    /// own, so it fits NAME_MAX whatever `name` is), `fsync`, rename, `fsync` of the folder.
    /// Readers see the old content or the new, never a part, even after a power loss.
    static func writeAtomically(_ data: Data, _ dir: Int32, _ name: String, shown: String) throws {
        let tmp = tempName()
        let fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o644)
        if fd < 0 { throw QueueError.io(operation: "create a temporary file for", path: shown, errno: errno) }
        var failure: (String, Int32)?
        data.withUnsafeBytes { buf in
            var off = 0
            while off < buf.count {
                let n = write(fd, buf.baseAddress! + off, buf.count - off)
                if n < 0 { if errno == EINTR { continue }; failure = ("write", errno); return }
                off += n
            }
        }
        if failure == nil && fsync(fd) != 0 { failure = ("fsync", errno) }
        close(fd)
        if let (op, e) = failure {
            unlinkat(dir, tmp, 0)
            throw QueueError.io(operation: op, path: shown, errno: e)
        }
        if renameat(dir, tmp, dir, name) != 0 {
            let e = errno
            unlinkat(dir, tmp, 0)
            throw QueueError.io(operation: "rename into place", path: shown, errno: e)
        }
        syncDirectory(dir)
    }

    /// `fsync` of a folder, so the renames into it survive a power loss. Best effort: some
    /// file systems refuse it (EINVAL) and have nothing to flush.
    static func syncDirectory(_ dir: Int32) { _ = fsync(dir) }

    /// A temporary name of the queue's: a dotfile (never read as a job) of fixed length.
    static func tempName() -> String { ".tmp-" + randomToken(8) }
    static func isTempName(_ name: String) -> Bool { name.hasPrefix(".tmp-") }

    /// Reads a regular file without following a symlink and without blocking (a FIFO is
    /// refused, never opened for reading). Throws naming `shown` when it is missing, not a
    /// regular file, unreadable, or larger than `limit` (never silently cut short).
    static func read(_ dir: Int32, _ name: String, limit: Int = maxJobFileBytes, shown: String) throws -> Data {
        let fd = openat(dir, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        if fd < 0 { throw QueueError.io(operation: "open", path: shown, errno: errno) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            throw QueueError.invalidEntry(path: shown, reason: "not a regular file")
        }
        var result = Data()
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw QueueError.io(operation: "read", path: shown, errno: errno) }
            if n == 0 { break }
            result.append(contentsOf: buf[0..<n])
            if result.count > limit { throw QueueError.tooLarge(path: shown, limit: limit) }
        }
        return result
    }

    /// `read`, or nil for any failure (documents the queue reads back and may find missing).
    static func readIfPresent(_ dir: Int32, _ name: String, limit: Int) -> Data? {
        try? read(dir, name, limit: limit, shown: name)
    }

    /// Removes `name` from `dir`: a file, or a whole tree walked by descriptor. Symlinks
    /// are removed, never followed.
    static func removeTree(_ dir: Int32, _ name: String) { removeTree(dir, raw: Array(name.utf8)) }

    /// `removeTree` for a name as raw bytes (it may not be UTF-8).
    static func removeTree(_ dir: Int32, raw name: [UInt8]) {
        withRawName(name) { cname in
            if unlinkat(dir, cname, 0) == 0 || errno == ENOENT { return }
            let sub = openat(dir, cname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if sub >= 0 {
                for child in listRaw(sub) { removeTree(sub, raw: child) }
                close(sub)
            }
            unlinkat(dir, cname, AT_REMOVEDIR)
        }
    }

    /// Calls `body` with `bytes` as a NUL-terminated C string (any bytes, UTF-8 or not).
    static func withRawName<R>(_ bytes: [UInt8], _ body: (UnsafePointer<CChar>) -> R) -> R {
        (bytes + [0]).withUnsafeBufferPointer { buf in
            buf.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buf.count) { body($0) }
        }
    }

    /// A random lower-case hex string (no dots: it ends work-folder names).
    static func randomToken(_ bytes: Int = 6) -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in hexDigits(UInt8.random(in: 0...255, using: &g), width: 2) }.joined()
    }

    /// Seconds since the epoch of a file's mtime (or ctime), with nanoseconds.
    static func modificationTime(_ st: stat) -> Double {
        Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9
    }

    static func changeTime(_ st: stat) -> Double {
        Double(st.st_ctim.tv_sec) + Double(st.st_ctim.tv_nsec) / 1e9
    }

    static var hostName: String {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, 255)
        return buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}
