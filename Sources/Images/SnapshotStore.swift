import AgentSupport
import Dispatch
import FoundationEssentials
import Glibc
import Sandbox

/// Unpacked layers, `snapshots/sha256/<chainid>`: one folder per layer holding only that
/// layer's files (whiteouts converted), keyed by the ChainID of the stack it sits on, so
/// every image and job with the same stack shares it and no layer is unpacked twice. A
/// snapshot is unpacked in `tmp/` and renamed into place under a per-ChainID flock, so a
/// concurrent pull waits and then finds it; a failed unpack leaves nothing.
///
/// Snapshots are keyed by owner mapping too: with `owners` nil (single mode) every file
/// belongs to the agent and the layer's owners are in `user.rootlesscontainers`
/// (`snapshots/sha256/CHAIN`); with subordinate ranges the files carry the layer's owners
/// as the steps' mapping shows them (`snapshots/sha256/CHAIN-u<start>+<count>g<start>+<count>`,
/// see `OwnerRanges.key`). Both may sit side by side; each mode uses its own.
public struct SnapshotStore: Sendable {
    let store: ContentStore
    /// The subordinate ranges snapshots are unpacked for, or nil (the agent owns every file).
    public var owners: OwnerRanges?

    public init(store: ContentStore, owners: OwnerRanges? = nil) {
        self.store = store
        self.owners = owners
    }

    /// The snapshot folder's name: the ChainID's hex, and the owner ranges' key if any.
    public func name(_ chainID: Digest) -> String { owners.map { chainID.hex + "-" + $0.key } ?? chainID.hex }

    public func path(_ chainID: Digest) -> String { store.root + "/snapshots/sha256/" + name(chainID) }

    public func has(_ chainID: Digest) -> Bool {
        var st = stat()
        return lstat(path(chainID), &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// Makes sure the snapshots of `layers` (bottom first, with the config's diff_ids)
    /// exist. Returns their folders top first (overlayfs order) and the unpack warnings.
    public func ensure(image: String, layers: [Descriptor], diffIDs: [Digest]) throws(ImageError) -> (paths: [String], warnings: [String]) {
        guard layers.count == diffIDs.count, !layers.isEmpty else {
            throw .badManifest(reference: image, digest: "", problem: "\(layers.count) layers but \(diffIDs.count) diff_ids in the config")
        }
        let chain = Digest.chainIDs(diffIDs)
        let todo = layers.indices.filter { !has(chain[$0]) }
        // The warm path (every snapshot there) starts no thread at all.
        if todo.isEmpty { return (chain.reversed().map(path), []) }
        // Each snapshot holds only its own layer's files, so layers unpack independently:
        // in parallel, one per core (decompression and file creation are CPU-bound).
        final class Results: @unchecked Sendable {
            let lock = Lock()
            var warnings: [Int: [String]] = [:]
            var failures: [Int: ImageError] = [:]
        }
        let results = Results()
        let store = self
        DispatchQueue.concurrentPerform(iterations: todo.count) { k in
            let i = todo[k]
            do throws(ImageError) {
                let w = try store.unpack(image: image, layer: layers[i].digest, diffID: diffIDs[i], chainID: chain[i])
                results.lock.withLock { results.warnings[i] = w }
            } catch {
                results.lock.withLock { results.failures[i] = error }
            }
        }
        // The first failure in layer order is reported; snapshots that completed stay.
        if let first = results.failures.keys.min() { throw results.failures[first]! }
        let warnings = todo.flatMap { results.warnings[$0] ?? [] }
        return (chain.reversed().map(path), warnings)
    }

    /// Unpackers of one ChainID take turns on `locks/unpack-NAME`, not on the snapshot's own
    /// lock: that one is the lease lock (`ImageStore.lease`, shared, held for a job's or a
    /// build's life). An exclusive flock there waited for every lease, and deadlocked a
    /// build whose parallel stages share a base: one stage leased the base's snapshot right
    /// after unpacking it, while the other, which had found it missing a moment before,
    /// waited for the snapshot lock to unpack it again (`agent build` hung for good).
    private func unpack(image: String, layer: Digest, diffID: Digest, chainID: Digest) throws(ImageError) -> [String] {
        let lfd = try store.lock("unpack-" + name(chainID))
        defer { close(lfd) }
        if has(chainID) { return [] }  // another agent unpacked it while this one waited
        let blob = store.blobPath(layer)
        // The diff_id is checked in the same pass as the unpack (one decompression), into a
        // temporary folder renamed only when it matched: a snapshot is shared by its ChainID,
        // so a layer whose content is not what its config claims must never get one.
        let tmp = store.temporaryPath("unpack-" + chainID.short)
        guard mkdir(tmp, 0o755) == 0 else { throw .store(path: tmp, operation: "mkdir", errno: errno) }
        // Set once owners may have been applied: only then does removal need the owners process.
        var applying = false
        do throws(ImageError) {
            let unpacker = LayerUnpacker(image: image, layer: layer, owners: owners)
            var warnings = try unpacker.unpackVerifying(blob: blob, into: tmp, diffID: diffID)
            var size: Int64?
            if let recorded = unpacker.owners {
                // Measured while every folder is still the agent's (some will not be readable after).
                size = treeBytes(tmp)
                applying = true
                try recorded.apply(to: tmp)
                warnings += recorded.warnings
            }
            guard rename(tmp, path(chainID)) == 0 else { throw ImageError.store(path: path(chainID), operation: "rename", errno: errno) }
            if let size { store.recordSnapshotSize(name(chainID), size) }
            return warnings
        } catch {
            removeSnapshotTree(tmp, owners: applying ? owners : nil)
            throw error
        }
    }
}

/// Removes a tree of the store (never following symlinks; folders are owner-writable).
func removeTree(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
}

/// Removes a snapshot's folder. With `owners` (a subordinate-mode snapshot, whose files
/// and folders the agent may not be allowed to touch) its contents are deleted by the owners
/// process in a user namespace with those ranges first. Returns false when something is left.
@discardableResult
func removeSnapshotTree(_ path: String, owners: OwnerRanges?) -> Bool {
    if let owners {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd >= 0 {
            try? SubordinateOwners.removeContents(root: fd, ranges: owners, timeout: .seconds(600))
            close(fd)
        }
    }
    removeTree(path)
    var st = stat()
    return lstat(path, &st) != 0
}
