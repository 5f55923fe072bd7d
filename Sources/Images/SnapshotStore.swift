import AgentSupport
import Dispatch
import FoundationEssentials
import Glibc

/// Unpacked layers, `snapshots/sha256/<chainid>`: one folder per layer holding only that
/// layer's files (whiteouts converted), keyed by the ChainID of the stack it sits on, so
/// every image and job with the same stack shares it and no layer is unpacked twice. A
/// snapshot is unpacked in `tmp/` and renamed into place under a per-ChainID flock, so a
/// concurrent pull waits and then finds it; a failed unpack leaves nothing.
public struct SnapshotStore: Sendable {
    let store: ContentStore

    public init(store: ContentStore) { self.store = store }

    public func path(_ chainID: Digest) -> String { store.root + "/snapshots/sha256/" + chainID.hex }

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

    private func unpack(image: String, layer: Digest, diffID: Digest, chainID: Digest) throws(ImageError) -> [String] {
        let lfd = try store.lock("snapshot-" + chainID.hex)
        defer { close(lfd) }
        if has(chainID) { return [] }  // another agent unpacked it while this one waited
        let blob = store.blobPath(layer)
        // The diff_id is checked in the same pass as the unpack (one decompression), into a
        // temporary folder renamed only when it matched: a snapshot is shared by its ChainID,
        // so a layer whose content is not what its config claims must never get one.
        let tmp = store.temporaryPath("unpack-" + chainID.short)
        guard mkdir(tmp, 0o755) == 0 else { throw .store(path: tmp, operation: "mkdir", errno: errno) }
        do throws(ImageError) {
            let warnings = try LayerUnpacker(image: image, layer: layer).unpackVerifying(blob: blob, into: tmp, diffID: diffID)
            guard rename(tmp, path(chainID)) == 0 else { throw ImageError.store(path: path(chainID), operation: "rename", errno: errno) }
            return warnings
        } catch {
            removeTree(tmp)
            throw error
        }
    }
}

/// Removes a tree of the store (never following symlinks; folders are owner-writable).
func removeTree(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
}
