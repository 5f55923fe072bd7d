import AgentSupport
import FoundationEssentials
import Glibc

/// One stored image: the reference it was pulled by and the manifest (for this platform).
public struct ImageRecord: Sendable, Equatable {
    public var reference: String
    /// The platform manifest the image's layers come from.
    public var manifest: Digest
    /// What the registry returned for the reference (an index, or the manifest itself).
    public var digest: Digest
    /// Seconds since the epoch of the last pull.
    public var pulled: Int64
}

/// `refs.json`: reference → record. Every change re-reads the file under `refs.lock`
/// (flock) and replaces it by rename, so concurrent agents never lose each other's entries.
public struct RefIndex: Sendable {
    let store: ContentStore
    var path: String { store.root + "/refs.json" }

    public init(store: ContentStore) { self.store = store }

    public func all() -> [String: ImageRecord] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [:] }
        defer { close(fd) }
        guard let bytes = readUpTo(fd, limit: 64 << 20), case .object(let o)? = try? JSONValue.parse(bytes),
              case .object(let refs)? = o["refs"] else { return [:] }
        var out: [String: ImageRecord] = [:]
        for (ref, v) in refs {
            guard case .object(let r) = v, let m = r["manifest"]?.string.flatMap(Digest.init),
                  let d = r["digest"]?.string.flatMap(Digest.init) else { continue }
            var pulled: Int64 = 0
            if case .unsigned(let p)? = r["pulled"] { pulled = Int64(clamping: p) }
            out[ref] = ImageRecord(reference: ref, manifest: m, digest: d, pulled: pulled)
        }
        return out
    }

    public func get(_ reference: String) -> ImageRecord? { all()[reference] }

    /// Applies `change` to the index under the lock and replaces the file atomically.
    public func update(_ change: (inout [String: ImageRecord]) -> Void) throws(ImageError) {
        let lockPath = store.root + "/refs.lock"
        let lfd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lfd >= 0 else { throw .store(path: lockPath, operation: "open", errno: errno) }
        defer { close(lfd) }
        guard flock(lfd, LOCK_EX) == 0 else { throw .store(path: lockPath, operation: "flock", errno: errno) }
        var refs = all()
        change(&refs)
        var text = "{\"refs\": {"
        for (i, ref) in refs.keys.sorted().enumerated() {
            let r = refs[ref]!
            text += (i == 0 ? "\n  " : ",\n  ") + jsonQuoted(ref) + ": {\"manifest\": \"\(r.manifest)\", \"digest\": \"\(r.digest)\", \"pulled\": \(r.pulled)}"
        }
        text += "\n}}\n"
        let tmp = store.temporaryPath("refs")
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .store(path: tmp, operation: "create", errno: errno) }
        let ok = writeAll(fd, Array(text.utf8)) && fsync(fd) == 0
        let e = errno
        close(fd)
        guard ok else { unlink(tmp); throw .store(path: tmp, operation: "write", errno: e) }
        guard rename(tmp, path) == 0 else { let e = errno; unlink(tmp); throw .store(path: path, operation: "rename", errno: e) }
        syncDirectory(store.root)
    }
}
