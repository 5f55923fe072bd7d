import Glibc

// A plain detached thread for work that blocks in the kernel (waitpid, flock, poll on an
// inotify descriptor): such work must not sit on one of Swift concurrency's few
// cooperative threads. Foundation's `Thread` did this before; the agent now links
// FoundationEssentials only, which has no thread type.

/// Starts `body` on a new detached thread. Fails only when the system cannot create a
/// thread; the error carries errno.
package func startDetachedThread(_ body: @escaping @Sendable () -> Void) throws(ThreadStartError) {
    final class Box: @unchecked Sendable {
        let body: @Sendable () -> Void
        init(body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let box = Unmanaged.passRetained(Box(body: body)).toOpaque()
    var attr = pthread_attr_t()
    pthread_attr_init(&attr)
    defer { pthread_attr_destroy(&attr) }
    pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
    var thread = pthread_t()
    let rc = pthread_create(&thread, &attr, { raw in
        let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
        box.body()
        return nil
    }, box)
    if rc != 0 {
        Unmanaged<Box>.fromOpaque(box).release()
        throw ThreadStartError(errno: rc)
    }
}

/// `pthread_create` refused (EAGAIN when the process or user is out of threads).
package struct ThreadStartError: Error, CustomStringConvertible {
    package var errno: Int32
    package var description: String { "cannot start a thread: \(String(cString: strerror(errno)))" }
}
