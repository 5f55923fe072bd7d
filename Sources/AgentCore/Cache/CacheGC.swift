import AgentSupport
import FoundationEssentials
import Glibc

/// What to prune. Without `all`, `keepBytes` or `olderThan`, the default budget applies.
public struct PruneOptions: Sendable, Equatable {
    /// Delete every cache not in use.
    public var all = false
    /// Delete least recently used caches until the total is at most this many bytes.
    public var keepBytes: UInt64?
    /// Delete caches last used longer ago than this.
    public var olderThan: Duration?
    /// Only this scope (nil: all scopes).
    public var scope: String?

    public init(all: Bool = false, keepBytes: UInt64? = nil, olderThan: Duration? = nil, scope: String? = nil) {
        self.all = all
        self.keepBytes = keepBytes
        self.olderThan = olderThan
        self.scope = scope
    }
}

/// What a prune did.
public struct PruneReport: Sendable, Equatable, Codable {
    public var removed: [CacheInfo] = []
    public var skippedInUse: [CacheInfo] = []
    public var freedBytes: UInt64 = 0
    /// Total size of what is left.
    public var keptBytes: UInt64 = 0
    /// Caches that could not be deleted, with the reason.
    public var failures: [String] = []
}

extension CacheStore {
    /// Every cache (optionally of one scope), least recently used first. `measure` walks the
    /// data to get sizes (and stores them in meta.json); otherwise the last measured size.
    public func list(scope: String? = nil, measure: Bool = true) throws -> [CacheInfo] {
        try list(scope: scope, shouldMeasure: { _, _ in measure })
    }

    /// `list`, walking only the caches for which `shouldMeasure(metadata, inUse)` is true;
    /// the others keep their recorded size (0 if never measured).
    func list(scope: String?, shouldMeasure: (CacheMetadata, Bool) -> Bool) throws -> [CacheInfo] {
        if let scope, !CacheKey.isValidScope(scope) {
            throw CacheInputError("invalid cache scope \"\(scope)\" (expected [A-Za-z0-9._-]{1,128})")
        }
        let fm = FileManager.default
        let scopes = scope.map { [CacheKey.escape($0)] } ?? ((try? fm.contentsOfDirectory(atPath: state.caches)) ?? []).filter { !$0.hasPrefix(".") }
        var out: [CacheInfo] = []
        for s in scopes.sorted() {
            let dir = state.caches + "/" + s
            for name in ((try? fm.contentsOfDirectory(atPath: dir)) ?? []).sorted() {
                let entry = dir + "/" + name
                guard var meta = AtomicJSON.read(CacheMetadata.self, from: entry + "/meta.json") else { continue }
                let instances = Self.instances(entry: entry)
                let inUse = isInUse(scope: meta.scope, id: meta.id)
                if shouldMeasure(meta, inUse) {
                    meta.sizeBytes = instances.reduce(0) { $0 + FileTree.diskUsage(Self.instancePath(entry: entry, instance: $1)) }
                    meta.measured = Date()
                    // Re-read so a concurrent `lastUsed` update is not lost.
                    if var fresh = AtomicJSON.read(CacheMetadata.self, from: entry + "/meta.json") {
                        fresh.sizeBytes = meta.sizeBytes
                        fresh.measured = meta.measured
                        try? AtomicJSON.write(fresh, to: entry + "/meta.json")
                        meta = fresh
                    }
                }
                out.append(CacheInfo(scope: meta.scope, id: meta.id, sizeBytes: meta.sizeBytes ?? 0,
                                     created: meta.created, lastUsed: meta.lastUsed,
                                     inUse: inUse,
                                     instances: instances.count, path: entry))
            }
        }
        return out.sorted { $0.lastUsed < $1.lastUsed }
    }

    /// Whether any step holds the cache (a non-blocking probe of its use lock).
    public func isInUse(scope: String, id: String) -> Bool {
        guard let lock = LockFile(existing: lockPath(scope: scope, id: id) + "/use.lock") else { return false }
        defer { lock.close() }
        return !lock.tryLock(exclusive: true)
    }

    /// Deletes one cache; throws `InUseError` if a step holds it. Returns false if it did not exist.
    @discardableResult
    public func remove(scope: String, id: String) async throws -> Bool {
        let entry = entryPath(scope: scope, id: id)
        guard FileManager.default.fileExists(atPath: entry) else { return false }
        guard let trashed = try takeForDeletion(scope: scope, id: id) else {
            throw InUseError(what: "cache \"\(id)\" (scope \(scope))")
        }
        try await FileTree.removeTreeFully(trashed)
        return true
    }

    /// Under an exclusive, non-blocking use lock: moves the entry into the trash folder
    /// (one rename, so a new acquire never sees half a cache). Nil if the cache is in use.
    func takeForDeletion(scope: String, id: String) throws -> String? {
        let locks = lockPath(scope: scope, id: id)
        try StateDirectory.makeDirectory(locks, mode: 0o700)
        let lock = try LockFile(path: locks + "/use.lock")
        defer { lock.close() }
        guard lock.tryLock(exclusive: true) else { return nil }
        let entry = entryPath(scope: scope, id: id)
        let trashed = state.trash + "/" + UUID().uuidString
        try StateDirectory.makeDirectory(state.trash, mode: 0o700)
        if rename(entry, trashed) != 0 {
            if errno == ENOENT { return nil }
            throw StateError(path: entry, errno: errno, message: "cannot move to the trash")
        }
        return trashed
    }

    /// Prunes caches: never one in use; with a byte budget, least recently used first.
    public func prune(_ options: PruneOptions) async throws -> PruneReport {
        try await prune(options, shouldMeasure: { _, _ in true })
    }

    /// `prune`, measuring only where `shouldMeasure` says (see `list(scope:shouldMeasure:)`).
    func prune(_ options: PruneOptions, shouldMeasure: (CacheMetadata, Bool) -> Bool) async throws -> PruneReport {
        var options = options
        if !options.all && options.keepBytes == nil && options.olderThan == nil {
            options.keepBytes = CacheGC.defaultBudget(state: state)
        }
        let caches = try list(scope: options.scope, shouldMeasure: shouldMeasure) // LRU first
        var report = PruneReport()
        var total = caches.reduce(UInt64(0)) { $0 + $1.sizeBytes }
        let cutoff = options.olderThan.map { Date().addingTimeInterval(-Double($0.components.seconds)) }
        await emptyTrash()
        for c in caches {
            let overBudget = options.keepBytes.map { total > $0 } ?? false
            let tooOld = cutoff.map { c.lastUsed < $0 } ?? false
            guard options.all || overBudget || tooOld else { continue }
            guard let trashed = try takeForDeletion(scope: c.scope, id: c.id) else {
                report.skippedInUse.append(c)
                continue
            }
            do {
                try await FileTree.removeTreeFully(trashed)
            } catch {
                report.failures.append("\(c.scope)/\(c.id): \(error)")
            }
            report.removed.append(c)
            report.freedBytes += c.sizeBytes
            total -= c.sizeBytes
        }
        report.keptBytes = total
        return report
    }

    /// True when the last measured sizes are exact and within `budget` (see `CacheGC.runIfNeeded`);
    /// reads only meta.json files and probes use locks, never walks cache data. Any doubt: false.
    func provablyWithinBudget(_ budget: UInt64) -> Bool {
        let fm = FileManager.default
        if let trashed = try? fm.contentsOfDirectory(atPath: state.trash), !trashed.isEmpty { return false }
        var total: UInt64 = 0
        for s in ((try? fm.contentsOfDirectory(atPath: state.caches)) ?? []) where !s.hasPrefix(".") {
            let dir = state.caches + "/" + s
            for name in (try? fm.contentsOfDirectory(atPath: dir)) ?? [] {
                let entry = dir + "/" + name
                // `list` skips an entry without readable metadata; so does this.
                guard let meta = AtomicJSON.read(CacheMetadata.self, from: entry + "/meta.json") else { continue }
                guard let size = meta.sizeBytes, CacheGC.sizeIsCurrent(meta),
                      !isInUse(scope: meta.scope, id: meta.id) else { return false }
                let (sum, overflow) = total.addingReportingOverflow(size)
                if overflow { return false }
                total = sum
            }
        }
        return total <= budget
    }

    /// Finishes deletions an earlier, interrupted prune left in the trash.
    func emptyTrash() async {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: state.trash)) ?? [] {
            try? await FileTree.removeTreeFully(state.trash + "/" + name)
        }
    }
}

/// Automatic garbage collection after each job.
public enum CacheGC {
    /// The default budget: 10 GB or 20% of the state folder's file system, whichever is smaller.
    public static func defaultBudget(state: StateDirectory) -> UInt64 {
        let tenGB: UInt64 = 10 * 1024 * 1024 * 1024
        var vfs = statvfs()
        guard statvfs(state.root, &vfs) == 0 || statvfs("/", &vfs) == 0 else { return tenGB }
        let disk = UInt64(vfs.f_blocks) * UInt64(vfs.f_frsize)
        return min(tenGB, disk / 5)
    }

    /// A policy's budget (`"cache": {"keepBytes": N, "keepPercentOfDisk": P}`): the smaller of
    /// the two; a missing one does not limit.
    public static func budget(keepBytes: UInt64?, keepPercentOfDisk: Double?, state: StateDirectory) -> UInt64 {
        var limit = keepBytes ?? UInt64.max
        if let p = keepPercentOfDisk {
            var vfs = statvfs()
            if statvfs(state.root, &vfs) == 0 {
                let disk = Double(vfs.f_blocks) * Double(vfs.f_frsize)
                limit = min(limit, UInt64(max(0, disk * p / 100)))
            }
        }
        return limit == UInt64.max ? defaultBudget(state: state) : limit
    }

    /// Keeps the caches within `budgetBytes` (default: `defaultBudget`), least recently used
    /// first, never touching a cache in use. Called by the runner after each job; volumes
    /// are never collected.
    @discardableResult
    public static func run(state: StateDirectory, budgetBytes: UInt64? = nil) async throws -> PruneReport {
        try await CacheStore(state: state).prune(PruneOptions(keepBytes: budgetBytes ?? defaultBudget(state: state)))
    }

    /// `run`, unless the last measured sizes already prove there is nothing to do: the trash
    /// is empty and every cache was measured after it was last used (so its size is still
    /// exact), none is in use, and together they are within the budget. Then `run` would
    /// delete nothing, and skipping it saves walking every cache's files after every job.
    /// Returns nil when skipped.
    @discardableResult
    public static func runIfNeeded(state: StateDirectory, budgetBytes: UInt64? = nil) async throws -> PruneReport? {
        let budget = budgetBytes ?? defaultBudget(state: state)
        let store = CacheStore(state: state)
        if store.provablyWithinBudget(budget) { return nil }
        return try await store.prune(PruneOptions(keepBytes: budget))
    }
}

extension CacheGC {
    /// A cache a job used, as `(scope, id)`.
    public struct UsedCache: Hashable, Sendable {
        public var scope: String
        public var id: String
        public init(scope: String, id: String) {
            self.scope = scope
            self.id = id
        }
    }

    /// Whether `meta`'s recorded size is still exact: measured after the last use.
    static func sizeIsCurrent(_ meta: CacheMetadata) -> Bool {
        guard meta.sizeBytes != nil, let measured = meta.measured else { return false }
        return measured > meta.lastUsed
    }

    /// GC after a job: walks only the caches the job used (their sizes changed) and those
    /// whose recorded size is stale or missing and that nobody holds; every other cache
    /// keeps its recorded size and measure time. Then prunes to the budget as `run` does.
    /// Walking all caches after every job cost 0.4 s per job with one 200k-file cache.
    @discardableResult
    public static func runAfterJob(state: StateDirectory, budgetBytes: UInt64? = nil,
                                   used: Set<UsedCache>) async throws -> PruneReport? {
        let budget = budgetBytes ?? defaultBudget(state: state)
        let store = CacheStore(state: state)
        if used.isEmpty && store.provablyWithinBudget(budget) { return nil }
        return try await store.prune(PruneOptions(keepBytes: budget)) { meta, inUse in
            used.contains(UsedCache(scope: meta.scope, id: meta.id)) || (!inUse && !sizeIsCurrent(meta))
        }
    }
}

/// Ages as users write them for `--older-than`: `90s`, `30m`, `12h`, `7d`, `2w`.
public enum AgeText {
    public static func parse(_ text: String) -> Duration? {
        let units: [Character: Int64] = ["s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800]
        guard let last = text.last, let unit = units[last], let n = Int64(text.dropLast()), n >= 0 else { return nil }
        return .seconds(n * unit)
    }
}
