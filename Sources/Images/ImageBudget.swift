import FoundationEssentials
import Glibc

/// The store's size budget (policy `images.storeMaxBytes`): after a pull or an import has
/// grown the store past it, the least recently used images are removed, oldest first,
/// until it fits again, then their blobs and snapshots are pruned. An image a running step
/// or `agent exec` holds (a lease on its snapshots) is never evicted, nor the one just
/// prepared; when what is left still does not fit, the store stays over budget and says so.
///
/// "Used" is the later of the pull and the last lease: leasing touches the mtime of the
/// image's lock file `locks/image-MANIFEST` (one `futimens`, no index write on the
/// step-start path).
extension ImageStore {
    /// Bytes the store holds: blob files plus unpacked snapshots (each snapshot's size is
    /// measured once, when first needed, and kept beside it in `snapshot-sizes/`).
    public func usage() -> Int64 {
        var total: Int64 = 0
        let blobDir = content.root + "/blobs/sha256"
        for hex in (try? FileManager.default.contentsOfDirectory(atPath: blobDir)) ?? [] {
            var st = stat()
            if lstat(blobDir + "/" + hex, &st) == 0 { total += Int64(st.st_size) }
        }
        let snapDir = content.root + "/snapshots/sha256"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: snapDir)) ?? [] {
            total += snapshotSize(name)
        }
        return total
    }

    /// What an eviction pass did.
    public struct BudgetResult: Sendable, Equatable {
        /// References removed, least recently used first.
        public var evicted: [String] = []
        public var pruned = PruneResult()
        /// The store's size after the pass.
        public var bytes: Int64 = 0
        /// True when the store is still over budget (what is left is in use or just prepared).
        public var over = false
    }

    /// Evicts least recently used images until the store holds at most `maxBytes`.
    /// `keep`: references never evicted in this pass (the image a job is about to run).
    /// Must be called without the pull gate held (prune takes it exclusively).
    public func enforceBudget(_ maxBytes: Int64, keep: Set<String> = []) throws(ImageError) -> BudgetResult {
        var out = BudgetResult()
        out.bytes = usage()
        guard out.bytes > maxBytes else { return out }
        var candidates = refs.all().values.filter { !keep.contains($0.reference) }
            .map { (record: $0, used: lastUsed($0)) }
            .sorted { $0.used != $1.used ? $0.used < $1.used : $0.record.reference < $1.record.reference }
        while out.bytes > maxBytes, !candidates.isEmpty {
            let next = candidates.removeFirst().record
            if isLeased(next) { continue }
            try refs.update { $0[next.reference] = nil }
            out.evicted.append(next.reference)
            let p = try prune()
            out.pruned.blobs += p.blobs
            out.pruned.snapshots += p.snapshots
            out.pruned.bytes += p.bytes
            out.pruned.inUse = p.inUse
            out.bytes = usage()
        }
        out.over = out.bytes > maxBytes
        return out
    }

    /// Seconds since the epoch when `record` was last pulled or leased.
    func lastUsed(_ record: ImageRecord) -> Int64 {
        var st = stat()
        guard stat(content.root + "/locks/image-" + record.manifest.hex, &st) == 0 else { return record.pulled }
        return max(record.pulled, Int64(st.st_mtim.tv_sec))
    }

    /// Whether a running container uses `record` (its lease holds `locks/image-MANIFEST` shared).
    func isLeased(_ record: ImageRecord) -> Bool {
        guard let fd = try? content.lock("image-" + record.manifest.hex, nonBlocking: true) else { return true }
        close(fd)
        return false
    }

    /// The size of snapshot `name` (a folder name of `snapshots/sha256/`), from its sidecar
    /// or measured (and recorded) now. A subordinate-mode snapshot's sidecar is written when
    /// it is unpacked, while the agent can still read every folder of it.
    func snapshotSize(_ name: String) -> Int64 {
        let side = content.root + "/snapshot-sizes/" + name
        let fd = open(side, O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            defer { close(fd) }
            var buf = [UInt8](repeating: 0, count: 32)
            let n = read(fd, &buf, buf.count)
            if n > 0, let v = Int64(String(decoding: buf[0..<n], as: UTF8.self)) { return v }
        }
        let size = treeBytes(content.root + "/snapshots/sha256/" + name)
        content.recordSnapshotSize(name, size)
        return size
    }
}

extension ContentStore {
    /// Writes snapshot `name`'s size sidecar (`snapshot-sizes/NAME`: temp file, fsync, rename).
    func recordSnapshotSize(_ name: String, _ size: Int64) {
        let dir = root + "/snapshot-sizes"
        mkdir(dir, 0o700)
        let tmp = temporaryPath("size-" + name.prefix(12))
        let w = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if w >= 0 {
            let text = Array(String(size).utf8)
            let ok = write(w, text, text.count) == text.count && fsync(w) == 0
            close(w)
            if ok, rename(tmp, dir + "/" + name) == 0 { syncDirectory(dir) } else { unlink(tmp) }
        }
    }
}

/// Bytes of the regular files beneath `root` (symlinks not followed), iteratively.
func treeBytes(_ root: String) -> Int64 {
    var total: Int64 = 0
    var stack = [root]
    while let dir = stack.popLast() {
        guard let d = opendir(dir) else { continue }
        defer { closedir(d) }
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            var st = stat()
            guard fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            switch st.st_mode & S_IFMT {
            case S_IFDIR: stack.append(dir + "/" + name)
            case S_IFREG: total += Int64(st.st_blocks) * 512
            default: break
            }
        }
    }
    return total
}
