import AgentSupport
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// Small file-system primitives the queue is built from. None of them follows a symlink.
enum QueueFS {
    /// `lstat`, or nil when the path does not exist (or cannot be examined).
    static func lstatInfo(_ path: String) -> stat? {
        var st = stat()
        return lstat(path, &st) == 0 ? st : nil
    }

    static func isRegularFile(_ path: String) -> Bool {
        guard let st = lstatInfo(path) else { return false }
        return (st.st_mode & S_IFMT) == S_IFREG
    }

    static func isDirectory(_ path: String) -> Bool {
        guard let st = lstatInfo(path) else { return false }
        return (st.st_mode & S_IFMT) == S_IFDIR
    }

    static func exists(_ path: String) -> Bool { lstatInfo(path) != nil }

    /// Names in `dir` (without `.` and `..`); empty when the folder cannot be read.
    static func list(_ dir: String) -> [String] {
        guard let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var names: [String] = []
        while let entry = readdir(d) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    private typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>?, Int32, UnsafePointer<CChar>?, UInt32) -> Int32
    /// glibc's renameat2, looked up once: the Swift Glibc module does not export it.
    private static let renameat2Function: RenameAt2? = {
        guard let sym = dlsym(nil, "renameat2") else { return nil }
        return unsafeBitCast(sym, to: RenameAt2.self)
    }()

    /// Renames `from` to `to` unless `to` exists. Returns 0 or an errno (EEXIST when taken).
    ///
    /// Uses `renameat2(RENAME_NOREPLACE)`; on file systems without it (NFS) regular files
    /// fall back to link + unlink, which is atomic on NFS too, and folders to plain rename,
    /// which never replaces a non-empty folder (results folders are never empty).
    static func renameNoReplace(_ from: String, _ to: String) -> Int32 {
        if let r2 = renameat2Function {
            if r2(AT_FDCWD, from, AT_FDCWD, to, 1 /* RENAME_NOREPLACE */) == 0 { return 0 }
            let e = errno
            if e != EINVAL && e != ENOSYS { return e }
        }
        if isDirectory(from) {
            if exists(to) { return EEXIST }
            if rename(from, to) == 0 { return 0 }
            let e = errno
            return e == ENOTEMPTY ? EEXIST : e
        }
        if link(from, to) == 0 {
            unlink(from)
            return 0
        }
        let e = errno
        if e == EEXIST { return EEXIST }
        // protected_hardlinks forbids linking another user's file: last resort is a
        // checked plain rename (a tiny window, only on file systems without renameat2).
        if exists(to) { return EEXIST }
        return rename(from, to) == 0 ? 0 : errno
    }

    /// Writes `data` to `path` through a temporary sibling and a rename, so readers see the
    /// old content or the new, never a part.
    static func writeAtomically(_ data: Data, to path: String) throws {
        let dir = path.deletingLastPathComponent
        let base = path.lastPathComponent
        let tmp = dir + "/.\(base).tmp-\(randomToken())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o644)
        if fd < 0 { throw QueueError.io(operation: "create", path: tmp, errno: errno) }
        var ok = true
        data.withUnsafeBytes { buf in
            var off = 0
            while off < buf.count {
                let n = write(fd, buf.baseAddress! + off, buf.count - off)
                if n < 0 { if errno == EINTR { continue }; ok = false; break }
                off += n
            }
        }
        let writeErrno = errno
        close(fd)
        if !ok {
            unlink(tmp)
            throw QueueError.io(operation: "write", path: tmp, errno: writeErrno)
        }
        if rename(tmp, path) != 0 {
            let e = errno
            unlink(tmp)
            throw QueueError.io(operation: "rename", path: path, errno: e)
        }
    }

    /// Reads a small regular file without following a symlink; nil when missing or unreadable.
    static func read(_ path: String, limit: Int = 16 << 20) -> Data? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        if fd < 0 { return nil }
        defer { close(fd) }
        var result = Data()
        var buf = [UInt8](repeating: 0, count: 65536)
        while result.count < limit {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; return nil }
            if n == 0 { break }
            result.append(contentsOf: buf[0..<n])
        }
        return result
    }

    /// Removes a file or a whole tree; symlinks inside are removed, never followed.
    static func removeTree(_ path: String) {
        guard exists(path) else { return }
        try? FileManager.default.removeItem(atPath: path)
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

/// An exclusive `flock` on one job file, held through an open descriptor for as long as
/// the job lives. The lock belongs to the inode, so it moves with the file through every
/// rename (incoming → running → results). The descriptor is close-on-exec: containers
/// never inherit it.
public final class JobLock: @unchecked Sendable {
    public enum Outcome {
        case locked(JobLock)
        /// Someone else holds it: the job is alive (or being claimed).
        case busy
        /// The file is gone (someone moved it first) or is not a regular file.
        case missing
    }

    let fd: Int32
    let device: UInt64
    let inode: UInt64
    private let mutex = Lock()
    private var open_ = true

    private init(fd: Int32, device: UInt64, inode: UInt64) {
        self.fd = fd
        self.device = device
        self.inode = inode
    }

    /// Opens `path` (never through a symlink) and tries to lock it without waiting.
    static func acquire(_ path: String) -> Outcome {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        if fd < 0 { return .missing }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            return .missing
        }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            if errno == EINTR { continue }
            close(fd)
            return .busy
        }
        return .locked(JobLock(fd: fd, device: UInt64(st.st_dev), inode: UInt64(st.st_ino)))
    }

    /// True when `path` is (still) the locked file: the check after every rename, because
    /// NFS can report a rename that happened as failed, or the reverse.
    func matches(_ path: String) -> Bool {
        guard let st = QueueFS.lstatInfo(path) else { return false }
        return UInt64(st.st_dev) == device && UInt64(st.st_ino) == inode
    }

    /// Releases the lock (idempotent).
    func release() {
        mutex.lock()
        defer { mutex.unlock() }
        if open_ {
            open_ = false
            close(fd)
        }
    }

    deinit { release() }
}
