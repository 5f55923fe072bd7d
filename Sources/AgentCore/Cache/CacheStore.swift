import AgentSupport
import FoundationEssentials
import Glibc

/// The persistent cache store under the state folder (see `StateDirectory` for the layout).
///
/// Every holder of a cache keeps a shared `flock` on the cache's `use.lock`; pruning, import
/// and removal take it exclusively without waiting, so they never touch a cache in use.
/// All locks are `flock`s and die with their holder.
public struct CacheStore: Sendable {
    public let state: StateDirectory

    public init(state: StateDirectory) {
        self.state = state
    }

    /// Acquires the cache `cache.id` in `scope` for one step, creating it on first use.
    ///
    /// - `shared`: everyone gets instance 0 at once.
    /// - `locked`: one holder at a time, in arrival order; `onWait` is called once with a
    ///   message ("waiting for locked cache ...") before waiting, and the lease records the wait.
    /// - `private`: a free existing instance (instance 0 first), else a new one.
    ///
    /// Release the lease when the step ends; if the process dies the kernel releases it.
    public func acquire(_ cache: MountSpec.Cache, scope: String,
                        onWait: @escaping @Sendable (String) -> Void = { _ in }) async throws -> CacheLease {
        guard CacheKey.isValidScope(scope) else {
            throw CacheInputError("invalid cache scope \"\(scope)\" (expected [A-Za-z0-9._-]{1,128})")
        }
        guard !cache.id.isEmpty else { throw CacheInputError("cache id must not be empty") }
        try state.create()
        let entry = entryPath(scope: scope, id: cache.id)
        let locks = lockPath(scope: scope, id: cache.id)
        try StateDirectory.makeDirectory(locks, mode: 0o700)

        var held: [LockFile] = []
        var ticket: LockedQueue.Ticket?
        do {
            // Waits only while a prune or import of this very cache is under way.
            let use = try LockFile(path: locks + "/use.lock")
            held.append(use)
            try await use.lock(exclusive: false)
            try StateDirectory.makeDirectory(entry, mode: 0o700)

            var waited: Duration = .zero
            var instance = 0
            switch cache.sharing {
            case .shared, .locked:
                if cache.sharing == .locked {
                    let queue = LockedQueue(directory: locks + "/queue")
                    let t = try queue.enqueue()
                    ticket = t
                    let start = ContinuousClock.now
                    let message = "waiting for locked cache \"\(cache.id)\" (scope \(scope))"
                    if try await queue.waitTurn(t, onWait: { onWait(message) }) {
                        waited = ContinuousClock.now - start
                    }
                }
                // A shared hold on instance 0 keeps `private` users off it; if a private user
                // already holds it we still proceed, since shared users accept concurrent use.
                let inst = try LockFile(path: locks + "/inst-0.lock")
                _ = inst.tryLock(exclusive: false)
                held.append(inst)
            case .private:
                let (n, lock) = try claimPrivateInstance(entry: entry, locks: locks)
                instance = n
                held.append(lock)
            }

            let data = Self.instancePath(entry: entry, instance: instance)
            let isNew = try createData(data, mode: cache.mode)
            try touchMetadata(entry: entry, scope: scope, cache: cache)
            return CacheLease(store: self, scope: scope, cache: cache, instance: instance, hostPath: data,
                              isNew: isNew, waited: waited, locks: held, ticket: ticket)
        } catch {
            ticket?.leave()
            held.reversed().forEach { $0.close() }
            throw error
        }
    }

    /// Host path of a cache entry (its folder holds `meta.json` and the instances).
    public func entryPath(scope: String, id: String) -> String {
        state.caches + "/" + CacheKey.escape(scope) + "/" + CacheKey.escape(id)
    }

    func lockPath(scope: String, id: String) -> String {
        state.locks + "/caches/" + CacheKey.escape(scope) + "/" + CacheKey.escape(id)
    }

    static func instancePath(entry: String, instance: Int) -> String {
        instance == 0 ? entry + "/data" : entry + "/data.\(instance)"
    }

    /// Instance numbers present in an entry (0 is `data`, n is `data.n`).
    static func instances(entry: String) -> [Int] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: entry)) ?? []
        return names.compactMap { name in
            if name == "data" { return 0 }
            if name.hasPrefix("data."), let n = Int(name.dropFirst(5)), n > 0 { return n }
            return nil
        }.sorted()
    }

    /// The first instance nobody holds (abandoned ones are free again, since their holder's
    /// lock died with it), else a new one. Serialized by `private.lock` so two arrivals never
    /// pick the same new number.
    private func claimPrivateInstance(entry: String, locks: String) throws -> (Int, LockFile) {
        let guardLock = try LockFile(path: locks + "/private.lock")
        defer { guardLock.close() }
        try guardLock.lockNow(exclusive: true)
        let existing = Self.instances(entry: entry)
        for n in existing.isEmpty ? [0] : existing {
            let lock = try LockFile(path: locks + "/inst-\(n).lock")
            if lock.tryLock(exclusive: true) { return (n, lock) }
            lock.close()
        }
        var n = (existing.max() ?? 0) + 1
        while true {
            let lock = try LockFile(path: locks + "/inst-\(n).lock")
            if lock.tryLock(exclusive: true) { return (n, lock) }
            lock.close()
            n += 1
        }
    }

    /// Creates the data directory with exactly `mode` (no umask); returns whether it is new.
    private func createData(_ path: String, mode: UInt32) throws -> Bool {
        if mkdir(path, 0o700) != 0 {
            if errno == EEXIST {
                var st = stat()
                guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
                    throw StateError(path: path, message: "cache data is not a directory")
                }
                return false
            }
            throw StateError(path: path, errno: errno, message: "cannot create cache directory")
        }
        chmod(path, mode_t(mode))
        return true
    }

    private func touchMetadata(entry: String, scope: String, cache: MountSpec.Cache) throws {
        let path = entry + "/meta.json"
        let now = Date()
        var meta = AtomicJSON.read(CacheMetadata.self, from: path)
            ?? CacheMetadata(scope: scope, id: cache.id, created: now, lastUsed: now, mode: cache.mode,
                             uid: cache.uid, gid: cache.gid, sizeBytes: nil, measured: nil)
        meta.lastUsed = now
        try AtomicJSON.write(meta, to: path)
    }

    func markUsed(scope: String, id: String) {
        let path = entryPath(scope: scope, id: id) + "/meta.json"
        guard var meta = AtomicJSON.read(CacheMetadata.self, from: path) else { return }
        meta.lastUsed = Date()
        try? AtomicJSON.write(meta, to: path)
    }
}

/// A cache held by one step. Bind `hostPath` at the mount target (read-only if the
/// mount says `ro`), then `release()` when the step has ended.
public final class CacheLease: @unchecked Sendable {
    public let scope: String
    public let cache: MountSpec.Cache
    /// Instance number (0 unless concurrent `private` use made more).
    public let instance: Int
    /// The directory to bind into the container.
    public let hostPath: String
    /// The directory was created by this acquire.
    public let isNew: Bool
    /// Time spent waiting for a `locked` cache.
    public let waited: Duration

    private let store: CacheStore
    private let mutex = Lock()
    private var locks: [LockFile]
    private var ticket: LockedQueue.Ticket?

    init(store: CacheStore, scope: String, cache: MountSpec.Cache, instance: Int, hostPath: String, isNew: Bool,
         waited: Duration, locks: [LockFile], ticket: LockedQueue.Ticket?) {
        self.store = store
        self.scope = scope
        self.cache = cache
        self.instance = instance
        self.hostPath = hostPath
        self.isNew = isNew
        self.waited = waited
        self.locks = locks
        self.ticket = ticket
    }

    deinit { release() }

    /// The status.json entry for this use.
    public var use: CacheUse {
        let w = waited.components
        return CacheUse(id: cache.id, scope: scope, sharing: cache.sharing.rawValue, new: isNew,
                        waitSeconds: Double(w.seconds) + Double(w.attoseconds) / 1e18,
                        target: cache.target, readOnly: cache.readOnly)
    }

    /// Releases the cache (idempotent): records the last use, then drops the locks, the
    /// queue ticket first so the next waiter of a `locked` cache goes on.
    public func release() {
        mutex.lock()
        let locks = self.locks, ticket = self.ticket
        self.locks = []
        self.ticket = nil
        mutex.unlock()
        guard !locks.isEmpty || ticket != nil else { return }
        store.markUsed(scope: scope, id: cache.id)
        ticket?.leave()
        locks.reversed().forEach { $0.close() }
    }
}
