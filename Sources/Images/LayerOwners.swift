import AgentSupport
import FoundationEssentials
import Glibc
import Sandbox

/// The owners of one layer's entries in subordinate mode (README "Owners"), recorded while
/// the agent unpacks (every file is still its own) and applied afterwards, in one go, by
/// the owners process (`SubordinateOwners`) in a user namespace mapped as the steps' is:
/// container id k of the tar is host id `start + k - 1`, 0 stays the agent's.
///
/// An entry the layer replaces later (a duplicate path, a file a whiteout of the same
/// layer removes, a folder replaced by a file) is forgotten, with what was beneath it, so
/// the list names only what the snapshot holds.
final class LayerOwners: @unchecked Sendable {
    struct Entry {
        var path: String
        var uid: UInt32
        var gid: UInt32
        var mode: UInt32
        var symlink: Bool
        /// The mode must be set again after the chown (see `record`).
        var chmod: Bool
        var capability: [UInt8]
    }

    let ranges: OwnerRanges
    let image: String
    let layer: Digest
    /// More entries with owners than any image needs (LayerWriter's own bound): the layer fails.
    static let maxEntries = 1_000_000
    private var entries: [Entry?] = []
    private var index: [String: Int] = [:]
    private(set) var warnings: [String] = []

    init(ranges: OwnerRanges, image: String, layer: Digest) {
        self.ranges = ranges
        self.image = image
        self.layer = layer
    }

    /// Whether the owner uid:gid has host ids in the ranges.
    func canApply(uid: Int64, gid: Int64) -> Bool {
        uid >= 0 && gid >= 0 && uid <= Int64(UInt32.max) && gid <= Int64(UInt32.max)
            && ranges.mapsUID(UInt32(uid)) && ranges.mapsGID(UInt32(gid))
    }

    /// Records the tar's owner of `path` (made just now). Returns false when the owner cannot be applied
    /// (an id outside the ranges: a warning naming the path and the id; the entry keeps the
    /// agent's uid, root inside, and the caller records the owner in the xattr instead).
    @discardableResult
    func record(path: String, uid: Int64, gid: Int64, mode: UInt32, type: UInt32, capability: [UInt8]) throws(ImageError) -> Bool {
        let symlink = type == UInt32(Glibc.S_IFLNK)
        // A chown clears set-id bits; the unpacker gave folders owner rwx and made FIFOs
        // under the umask: those get their mode back, every other entry keeps the one it has.
        let chmod = !symlink && ((mode & 0o6000) != 0 || type == UInt32(Glibc.S_IFIFO)
                                 || (type == UInt32(Glibc.S_IFDIR) && (mode & 0o700) != 0o700))
        var u = UInt32(clamping: uid), g = UInt32(clamping: gid)
        var applied = true
        if !canApply(uid: uid, gid: gid) {
            warnings.append("\(image): layer \(layer): \(jsonish(path)) is owned by \(uid):\(gid), outside the agent's subordinate ids "
                + "(\(ranges.uids.count) uids, \(ranges.gids.count) gids from /etc/subuid and /etc/subgid): it belongs to root "
                + "in the container, its owner is kept in user.rootlesscontainers")
            u = 0; g = 0; applied = false
        }
        guard u != 0 || g != 0 || !capability.isEmpty else {
            forget(path, below: false)
            return applied
        }
        let e = Entry(path: path, uid: u, gid: g, mode: mode & 0o7777, symlink: symlink, chmod: chmod, capability: capability)
        if let i = index[path] {
            entries[i] = e
        } else {
            guard index.count < Self.maxEntries else {
                throw .hostileLayer(image: image, layer: layer, entry: path, problem: "more than \(Self.maxEntries) entries with owners")
            }
            index[path] = entries.count
            entries.append(e)
        }
        return applied
    }

    /// `path` is gone (and, for a folder, everything beneath it).
    func forget(_ path: String, below: Bool) {
        if let i = index.removeValue(forKey: path) { entries[i] = nil }
        guard below else { return }
        let prefix = path + "/"
        for (p, i) in index where p.hasPrefix(prefix) {
            index[p] = nil
            entries[i] = nil
        }
    }

    /// The records for the owners process, and their paths in the same order.
    func list() -> (list: SubordinateOwners.List, paths: [String]) {
        var l = SubordinateOwners.List()
        var paths: [String] = []
        for case let e? in entries {
            l.append(path: Array(e.path.utf8), uid: e.uid, gid: e.gid, mode: e.mode, symlink: e.symlink, chmod: e.chmod, capability: e.capability)
            paths.append(e.path)
        }
        return (l, paths)
    }

    /// How long the owners process may take: generous (a second per 2,000 entries on top
    /// of a minute), but bounded, so a wedged process never holds a pull forever.
    var deadline: Duration { .seconds(60 + index.count / 2000) }

    /// Applies the recorded owners beneath folder `dir` (the unpacked snapshot, not yet in
    /// place). A failure names the image, the layer and the entry.
    func apply(to dir: String) throws(ImageError) {
        let (l, paths) = list()
        guard l.count > 0 else { return }
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw .store(path: dir, operation: "open", errno: errno) }
        defer { close(fd) }
        do {
            try SubordinateOwners.apply(l, root: fd, ranges: ranges, timeout: deadline)
        } catch {
            let entry = error.index.flatMap { $0 < paths.count ? paths[$0] : nil }
            throw .ownersNotApplied(image: image, layer: layer, entry: entry,
                                    problem: "applying \(entry == nil ? "the layer's owners" : "its owner") in the subordinate id mapping (\(ranges)) failed at \(error)")
        }
    }
}
