import AgentSupport
import FoundationEssentials
import Glibc

/// Persistent named volumes (the `docker volume` idea) under the state folder's `volumes/`.
/// Never garbage-collected automatically. Each user holds a shared `flock` on
/// `locks/volumes/<name>.lock`, so `rm` and `prune` can refuse a volume in use.
public struct VolumeStore: Sendable {
    public let state: StateDirectory

    public init(state: StateDirectory) {
        self.state = state
    }

    /// One volume as `agent volume ls` shows it.
    public struct Info: Codable, Sendable, Equatable {
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
    public func dataPath(_ name: String) -> String { state.volumes + "/" + name + "/data" }

    /// Creates the volume; returns false if it already existed.
    @discardableResult
    public func create(_ name: String) throws -> Bool {
        try check(name)
        try state.create()
        let dir = state.volumes + "/" + name
        try StateDirectory.makeDirectory(dir, mode: 0o700)
        if mkdir(dir + "/data", 0o755) != 0 {
            if errno == EEXIST { return false }
            throw StateError(path: dir + "/data", errno: errno, message: "cannot create volume")
        }
        chmod(dir + "/data", 0o755)
        try AtomicJSON.write(Metadata(name: name, created: Date()), to: dir + "/meta.json")
        return true
    }

    /// Holds the volume for one step, creating it on first use.
    public func acquire(name: String, readOnly: Bool) async throws -> VolumeLease {
        try check(name)
        try state.create()
        let lock = try LockFile(path: state.locks + "/volumes/" + name + ".lock")
        // Waits only while an `rm` of this volume is deleting it.
        try await lock.lock(exclusive: false)
        do {
            let isNew = try create(name)
            return VolumeLease(name: name, hostPath: dataPath(name), readOnly: readOnly, isNew: isNew, lock: lock)
        } catch {
            lock.close()
            throw error
        }
    }

    public func isInUse(_ name: String) -> Bool {
        guard let lock = LockFile(existing: state.locks + "/volumes/" + name + ".lock") else { return false }
        defer { lock.close() }
        return !lock.tryLock(exclusive: true)
    }

    public func list() -> [Info] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: state.volumes)) ?? []
        return names.filter(VolumeName.isValid).sorted().compactMap { name in
            let dir = state.volumes + "/" + name
            guard FileManager.default.fileExists(atPath: dir + "/data") else { return nil }
            let meta = AtomicJSON.read(Metadata.self, from: dir + "/meta.json")
            return Info(name: name, created: meta?.created ?? Date(timeIntervalSince1970: 0),
                        sizeBytes: FileTree.diskUsage(dir + "/data"), inUse: isInUse(name))
        }
    }

    /// Deletes a volume. Throws `InUseError` if a step holds it; false if there was none.
    @discardableResult
    public func remove(_ name: String) async throws -> Bool {
        try check(name)
        let dir = state.volumes + "/" + name
        guard FileManager.default.fileExists(atPath: dir) else { return false }
        try StateDirectory.makeDirectory(state.locks + "/volumes", mode: 0o700)
        let lock = try LockFile(path: state.locks + "/volumes/" + name + ".lock")
        defer { lock.close() }
        guard lock.tryLock(exclusive: true) else { throw InUseError(what: "volume \"\(name)\"") }
        let trashed = state.trash + "/volume-" + UUID().uuidString
        try StateDirectory.makeDirectory(state.trash, mode: 0o700)
        guard rename(dir, trashed) == 0 else { throw StateError(path: dir, errno: errno, message: "cannot move to the trash") }
        lock.close() // the name is free again; deleting the data can take a while
        try await FileTree.removeTreeFully(trashed)
        return true
    }

    /// Deletes every volume not in use; returns the names removed.
    public func prune() async throws -> [String] {
        var removed: [String] = []
        for v in list() where !v.inUse {
            do {
                if try await remove(v.name) { removed.append(v.name) }
            } catch is InUseError {
                continue
            }
        }
        return removed
    }

    private func check(_ name: String) throws {
        guard VolumeName.isValid(name) else {
            throw CacheInputError("invalid volume name \"\(name)\" (expected [A-Za-z0-9][A-Za-z0-9._-]*, at most 128)")
        }
    }
}

/// A volume held by one step; `release()` when the step has ended.
public final class VolumeLease: @unchecked Sendable {
    public let name: String
    public let hostPath: String
    public let readOnly: Bool
    /// Created by this acquire.
    public let isNew: Bool
    private let lock: LockFile

    init(name: String, hostPath: String, readOnly: Bool, isNew: Bool, lock: LockFile) {
        self.name = name
        self.hostPath = hostPath
        self.readOnly = readOnly
        self.isNew = isNew
        self.lock = lock
    }

    deinit { lock.close() }

    public func release() { lock.close() }
}
