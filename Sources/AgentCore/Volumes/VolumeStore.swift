import AgentSupport
import FoundationEssentials
import Glibc

/// Persistent named volumes (the `docker volume` idea) under the state folder's
/// `volumes/<scope>/<name>/`. Volumes live in the same scopes as caches: a job sees only
/// the volumes of the cache scope the operator granted it (`--cache-scope`), so a fork's
/// job cannot read or plant data in a trusted job's volume. Never garbage-collected
/// automatically. Each user holds a shared `flock` on `locks/volumes/<scope>/<name>.lock`,
/// so `rm` and `prune` can refuse a volume in use.
///
/// Volumes made before scopes existed (`volumes/<name>/`) are moved into scope `default`
/// on first use (`VolumeLayout`).
public struct VolumeStore: Sendable {
    public let state: StateDirectory

    public init(state: StateDirectory) {
        self.state = state
    }

    /// One volume as `agent volume ls` shows it.
    public struct Info: Codable, Sendable, Equatable {
        public var scope: String
        public var name: String
        public var created: Date
        public var sizeBytes: UInt64
        public var inUse: Bool
    }

    struct Metadata: Codable {
        var name: String
        var created: Date
    }

    /// Host path of the volume's data (bind this).
    public func dataPath(_ name: String, scope: String) -> String { directory(name, scope: scope) + "/data" }

    private func directory(_ name: String, scope: String) -> String { state.volumes + "/" + scope + "/" + name }
    private func lockPath(_ name: String, scope: String) -> String { state.locks + "/volumes/" + scope + "/" + name + ".lock" }

    /// Creates the volume in `scope`; returns false if it already existed.
    @discardableResult
    public func create(_ name: String, scope: String) throws -> Bool {
        try check(name, scope: scope)
        try prepare(scope)
        let dir = directory(name, scope: scope)
        try StateDirectory.makeDirectory(dir, mode: 0o700)
        if mkdir(dir + "/data", 0o755) != 0 {
            if errno == EEXIST { return false }
            throw StateError(path: dir + "/data", errno: errno, message: "cannot create volume")
        }
        chmod(dir + "/data", 0o755)
        try AtomicJSON.write(Metadata(name: name, created: Date()), to: dir + "/meta.json")
        return true
    }

    /// Holds the volume `name` of `scope` for one step, creating it on first use.
    public func acquire(name: String, scope: String, readOnly: Bool) async throws -> VolumeLease {
        try check(name, scope: scope)
        try prepare(scope)
        let lock = try LockFile(path: lockPath(name, scope: scope))
        // Waits only while an `rm` of this volume is deleting it.
        try await lock.lock(exclusive: false)
        do {
            let isNew = try create(name, scope: scope)
            return VolumeLease(name: name, scope: scope, hostPath: dataPath(name, scope: scope), readOnly: readOnly,
                               isNew: isNew, lock: lock)
        } catch {
            lock.close()
            throw error
        }
    }

    public func isInUse(_ name: String, scope: String) -> Bool {
        guard let lock = LockFile(existing: lockPath(name, scope: scope)) else { return false }
        defer { lock.close() }
        return !lock.tryLock(exclusive: true)
    }

    /// The volumes of `scope`, or of every scope when nil; sorted by scope, then name.
    public func list(scope: String? = nil) throws -> [Info] {
        if let scope { try check("x", scope: scope) }
        try state.create()
        try VolumeLayout.ensureScoped(state)
        let scopes = scope.map { [$0] } ?? ((try? FileManager.default.contentsOfDirectory(atPath: state.volumes)) ?? [])
        return scopes.filter(VolumeName.isValid).sorted().flatMap { scope in
            let names = (try? FileManager.default.contentsOfDirectory(atPath: state.volumes + "/" + scope)) ?? []
            return names.filter(VolumeName.isValid).sorted().compactMap { name -> Info? in
                let dir = directory(name, scope: scope)
                guard FileManager.default.fileExists(atPath: dir + "/data") else { return nil }
                let meta = AtomicJSON.read(Metadata.self, from: dir + "/meta.json")
                return Info(scope: scope, name: name, created: meta?.created ?? Date(timeIntervalSince1970: 0),
                            sizeBytes: FileTree.diskUsage(dir + "/data"), inUse: isInUse(name, scope: scope))
            }
        }
    }

    /// Deletes a volume of `scope`. Throws `InUseError` if a step holds it; false if there was none.
    @discardableResult
    public func remove(_ name: String, scope: String) async throws -> Bool {
        try check(name, scope: scope)
        try prepare(scope)
        let dir = directory(name, scope: scope)
        guard FileManager.default.fileExists(atPath: dir) else { return false }
        let lock = try LockFile(path: lockPath(name, scope: scope))
        defer { lock.close() }
        guard lock.tryLock(exclusive: true) else { throw InUseError(what: "volume \"\(name)\" (scope \"\(scope)\")") }
        let trashed = state.trash + "/volume-" + UUID().uuidString
        try StateDirectory.makeDirectory(state.trash, mode: 0o700)
        guard rename(dir, trashed) == 0 else { throw StateError(path: dir, errno: errno, message: "cannot move to the trash") }
        lock.close() // the name is free again; deleting the data can take a while
        try await FileTree.removeTreeFully(trashed)
        return true
    }

    /// Deletes every volume not in use, of `scope` or of every scope when nil; returns
    /// the volumes removed.
    public func prune(scope: String? = nil) async throws -> [Info] {
        var removed: [Info] = []
        for v in try list(scope: scope) where !v.inUse {
            do {
                if try await remove(v.name, scope: v.scope) { removed.append(v) }
            } catch is InUseError {
                continue
            }
        }
        return removed
    }

    /// The state folder, the layout migration and the scope's folders, before any use.
    private func prepare(_ scope: String) throws {
        try state.create()
        try VolumeLayout.ensureScoped(state)
        try StateDirectory.makeDirectory(state.volumes + "/" + scope, mode: 0o700)
        try StateDirectory.makeDirectory(state.locks + "/volumes/" + scope, mode: 0o700)
    }

    private func check(_ name: String, scope: String) throws {
        guard VolumeName.isValid(scope) else {
            throw CacheInputError("invalid volume scope \"\(scope)\" (expected [A-Za-z0-9][A-Za-z0-9._-]*, at most 128)")
        }
        guard VolumeName.isValid(name) else {
            throw CacheInputError("invalid volume name \"\(name)\" (expected [A-Za-z0-9][A-Za-z0-9._-]*, at most 128)")
        }
    }
}

/// A volume held by one step; `release()` when the step has ended.
public final class VolumeLease: @unchecked Sendable {
    public let name: String
    public let scope: String
    public let hostPath: String
    public let readOnly: Bool
    /// Created by this acquire.
    public let isNew: Bool
    private let lock: LockFile

    init(name: String, scope: String, hostPath: String, readOnly: Bool, isNew: Bool, lock: LockFile) {
        self.name = name
        self.scope = scope
        self.hostPath = hostPath
        self.readOnly = readOnly
        self.isNew = isNew
        self.lock = lock
    }

    deinit { lock.close() }

    public func release() { lock.close() }
}
