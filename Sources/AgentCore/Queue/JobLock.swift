import AgentSupport
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// An exclusive `flock` on one job file, held through an open descriptor for as long as
/// the job lives. The lock belongs to the inode, so it moves with the file through every
/// rename (incoming → running → results). The descriptor is close-on-exec: containers
/// never inherit it.
///
/// The file is opened for reading *and writing* (never written): on NFS the client turns
/// `flock` into a byte-range lock, and an exclusive one needs a descriptor open for
/// writing (flock(2), "NFS details"); a read-only descriptor gets EBADF there, and no job
/// would ever be claimed. Only when the agent may not write the file (EACCES, EROFS) does
/// it fall back to a read-only descriptor, which locks correctly on local file systems.
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

    /// Opens `name` in folder `dir` (never through a symlink, never blocking on a FIFO)
    /// and tries to lock it without waiting.
    static func acquire(_ dir: Int32, _ name: String) -> Outcome {
        let flags = O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY
        var fd = openat(dir, name, O_RDWR | flags)
        if fd < 0 && (errno == EACCES || errno == EROFS) { fd = openat(dir, name, O_RDONLY | flags) }
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

    /// The access mode the descriptor was opened with (`O_RDWR` unless the file was not
    /// writable by the agent): for tests and diagnostics.
    var accessMode: Int32 { fcntl(fd, F_GETFL) & O_ACCMODE }

    /// True when `dir/name` is (still) the locked file: the check after every rename,
    /// because NFS can report a rename that happened as failed, or the reverse.
    func matches(_ dir: Int32, _ name: String) -> Bool {
        guard let st = QueueFS.lstat(dir, name) else { return false }
        return UInt64(st.st_dev) == device && UInt64(st.st_ino) == inode
    }

    /// True when `path`, resolved the ordinary way, is the locked file: checks that the path
    /// handed to the runner leads to the job this agent claimed (no folder swapped for a
    /// symlink on the way).
    func matches(path: String) -> Bool {
        var st = stat()
        guard fstatat(AT_FDCWD, path, &st, 0) == 0 else { return false }
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
