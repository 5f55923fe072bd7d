import AgentSupport
import FoundationEssentials
import Glibc

/// An open lock file, locked with `flock(2)`.
///
/// `flock` locks belong to the open file description, so they are released when the holder
/// closes the file or dies (even by SIGKILL): a killed agent never leaves a cache locked. Two
/// opens in one process are independent, so the same rules hold between tasks of one agent.
final class LockFile: @unchecked Sendable {
    let path: String
    private let mutex = Lock()
    private var fd: Int32

    /// Opens (creating it, mode 0600) the lock file at `path`; refuses a symlink.
    init(path: String) throws {
        self.path = path
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw StateError(path: path, errno: errno, message: "cannot open lock file") }
        self.fd = fd
    }

    /// Opens an existing lock file; nil if it is gone.
    init?(existing path: String) {
        self.path = path
        let fd = Glibc.open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        self.fd = fd
    }

    deinit { close() }

    var descriptor: Int32 { mutex.withLock { fd } }

    /// Takes the lock if nobody holds a conflicting one; never waits.
    func tryLock(exclusive: Bool) -> Bool {
        let fd = descriptor
        guard fd >= 0 else { return false }
        while true {
            if flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0 { return true }
            if errno != EINTR { return false }
        }
    }

    /// Waits for the lock on the calling thread; only for locks held briefly (a counter update).
    func lockNow(exclusive: Bool) throws {
        while flock(descriptor, exclusive ? LOCK_EX : LOCK_SH) != 0 {
            if errno != EINTR { throw StateError(path: path, errno: errno, message: "flock") }
        }
    }

    /// Waits for the lock without blocking the async executor: a blocking `flock` on a
    /// dedicated thread, so the kernel queues us (no polling). If the task is cancelled the
    /// wait returns at once with `CancellationError`; the thread then drops the lock as soon
    /// as the kernel grants it, by closing this file.
    func lock(exclusive: Bool) async throws {
        if tryLock(exclusive: exclusive) { return }
        let fd = descriptor
        let state = WaitState()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (cont: CheckedContinuation<Void, Error>) in
                state.setContinuation(cont)
                do {
                    try startDetachedThread { [self] in
                    var rc: Int32
                    repeat { rc = flock(fd, exclusive ? LOCK_EX : LOCK_SH) } while rc != 0 && errno == EINTR
                    let err = errno
                    if !state.finish(rc == 0 ? nil : StateError(path: path, errno: err, message: "flock")) {
                        // Cancelled meanwhile: nobody wants the lock any more.
                        self.close()
                    }
                    }
                } catch {
                    _ = state.finish(StateError(path: path, errno: (error as? ThreadStartError)?.errno ?? EAGAIN, message: "pthread_create"))
                }
            }
        } onCancel: {
            _ = state.finish(CancellationError(), cancelled: true)
        }
    }

    func unlock() {
        let fd = descriptor
        if fd >= 0 { flock(fd, LOCK_UN) }
    }

    /// Closes the file, which releases the lock.
    func close() {
        mutex.withLock {
            if fd >= 0 { Glibc.close(fd); fd = -1 }
        }
    }

    /// Whether the file at `path` is still the one this descriptor has open.
    func isCurrent() -> Bool {
        var a = stat(), b = stat()
        guard fstat(descriptor, &a) == 0, lstat(path, &b) == 0 else { return false }
        return a.st_dev == b.st_dev && a.st_ino == b.st_ino
    }
}

/// Resolves a waiting continuation exactly once, from the flock thread or from cancellation.
private final class WaitState: @unchecked Sendable {
    private let mutex = Lock()
    private var continuation: CheckedContinuation<Void, Error>?
    private var done = false
    private var pending: Error??

    func setContinuation(_ c: CheckedContinuation<Void, Error>) {
        mutex.lock()
        if done {
            mutex.unlock()
            if let e = pending ?? nil { c.resume(throwing: e) } else { c.resume() }
            return
        }
        continuation = c
        mutex.unlock()
    }

    /// Returns false if the wait had already been given up (cancelled).
    func finish(_ error: Error?, cancelled: Bool = false) -> Bool {
        mutex.lock()
        if done { mutex.unlock(); return false }
        done = true
        let c = continuation
        continuation = nil
        if c == nil { pending = .some(error) }
        mutex.unlock()
        if let c { if let error { c.resume(throwing: error) } else { c.resume() } }
        return true
    }
}
