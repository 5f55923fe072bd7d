import Glibc

/// A pthread mutex for short critical sections shared with plain threads (the flock and
/// inotify threads), where an `NSLock` stood before the agent moved to FoundationEssentials.
/// `Synchronization.Mutex` would need the guarded state moved inside it; these call sites
/// guard state spread over a class, so a lock object is the smaller change.
package final class Lock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    package init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    package func lock() { pthread_mutex_lock(mutex) }
    package func unlock() { pthread_mutex_unlock(mutex) }

    package func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }
}
