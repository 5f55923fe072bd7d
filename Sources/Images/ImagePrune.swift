import FoundationEssentials
import Glibc
import Sandbox

/// Holds a running container's snapshots: a shared flock on each snapshot's lock file for
/// as long as the lease lives, so `agent image prune` never removes what a step uses.
public final class ImageLease: Sendable {
    let fds: [Int32]
    init(fds: [Int32]) { self.fds = fds }
    deinit { for fd in fds { close(fd) } }
}

/// What a prune removed.
public struct PruneResult: Sendable, Equatable {
    public var blobs = 0
    public var snapshots = 0
    public var bytes: Int64 = 0
    /// Snapshots kept because a running job or `agent exec` holds them.
    public var inUse = 0
}

extension ImageStore {
    /// Leases the snapshots of `chainIDs` in this store's owner mode (shared flocks, taken
    /// while pulls are held off) and, with `image`, the image itself (`locks/image-MANIFEST`,
    /// which the budget's eviction checks: a snapshot may be shared by images that are not running).
    func lease(_ chainIDs: [Digest], image: Digest? = nil) throws(ImageError) -> ImageLease {
        var fds: [Int32] = []
        let names = chainIDs.map { "snapshot-" + snapshots.name($0) } + (image.map { ["image-" + $0.hex] } ?? [])
        for name in names {
            do throws(ImageError) {
                let fd = try content.lock(name, shared: true)
                fds.append(fd)
                // The image lock's mtime is the image's "last used" (ImageBudget).
                if name.hasPrefix("image-") { futimens(fd, nil) }
            } catch {
                for fd in fds { close(fd) }
                throw error
            }
        }
        return ImageLease(fds: fds)
    }

    /// Removes every blob and snapshot no stored reference needs. A snapshot a running
    /// container leases is kept (counted in `inUse`), and so is what a running build's
    /// content lease lists (`ContentLease`: its layers before the commit tags them); pulls,
    /// imports and a build's layer writes are waited for (they hold `locks/pull` shared), so
    /// nothing they just stored is taken.
    ///
    /// A snapshot is needed when a reference needs its ChainID, in either owner mode; a
    /// subordinate-mode one only for the ranges /etc/subuid and /etc/subgid give now (one
    /// for ranges that changed is removed, in a user namespace with its own ranges while
    /// the helpers still grant them; otherwise it stays and counts in `inUse`).
    public func prune() throws(ImageError) -> PruneResult {
        let gate = try content.lock("pull")
        defer { close(gate) }
        var liveBlobs = Set<String>(), liveSnapshots = Set<String>()
        for r in refs.all().values {
            liveBlobs.insert(r.manifest.hex)
            liveBlobs.insert(r.digest.hex)
            guard let l = try? load(manifest: r.manifest, reference: r.reference) else { continue }
            liveBlobs.insert(l.configDigest.hex)
            for d in l.layers { liveBlobs.insert(d.digest.hex) }
            for c in Digest.chainIDs(l.config.diffIDs) { liveSnapshots.insert(c.hex) }
        }
        // What running builds made and no tag references yet (ContentLease): kept.
        let leased = ContentLease.live(in: content.root + "/locks")
        liveBlobs.formUnion(leased.blobs)
        var out = PruneResult()
        let blobDir = content.root + "/blobs/sha256"
        for hex in (try? FileManager.default.contentsOfDirectory(atPath: blobDir)) ?? [] where !liveBlobs.contains(hex) {
            var st = stat()
            if lstat(blobDir + "/" + hex, &st) == 0 { out.bytes += Int64(st.st_size) }
            if unlink(blobDir + "/" + hex) == 0 { out.blobs += 1 }
        }
        let snapDir = content.root + "/snapshots/sha256"
        let currentKey = OwnerRanges.forSteps(.subordinate)?.key
        for name in (try? FileManager.default.contentsOfDirectory(atPath: snapDir)) ?? [] {
            let parts = name.split(separator: "-", maxSplits: 1).map(String.init)
            let key = parts.count == 2 ? parts[1] : nil
            if liveSnapshots.contains(parts[0]) && (key == nil || key == currentKey) { continue }
            if leased.snapshots.contains(name) { out.inUse += 1; continue }
            guard let fd = try? content.lock("snapshot-" + name, nonBlocking: true) else { out.inUse += 1; continue }
            defer { close(fd) }
            let size = snapshotSize(name)
            guard removeSnapshotTree(snapDir + "/" + name, owners: key.flatMap(OwnerRanges.init(key:))) else { out.inUse += 1; continue }
            unlink(content.root + "/snapshot-sizes/" + name)
            out.bytes += size
            out.snapshots += 1
        }
        return out
    }
}
