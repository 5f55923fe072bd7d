import AgentSupport
import Crypto
import FoundationEssentials
import Glibc

/// The image store under the agent's state folder (`<state>/images`):
///
///     blobs/sha256/<hex>          manifests, configs and layers, by digest, verified
///     snapshots/sha256/<chainid>  one layer's files, unpacked once, shared (see SnapshotStore)
///     tmp/                        downloads and unpacks in progress (same filesystem: rename is atomic)
///     locks/                      flock files: one per blob download and per snapshot unpack
///     refs.json                   reference → manifest digest, replaced atomically under refs.lock
///
/// A blob appears under its digest only after its content hashed to it: it is written to
/// a temporary file, verified, fsynced and renamed, so a reader never sees a partial blob.
public final class ContentStore: Sendable {
    public let root: String

    public init(stateDirectory: String) throws(ImageError) {
        root = stateDirectory + "/images"
        for d in [root, root + "/blobs", root + "/blobs/sha256", root + "/snapshots", root + "/snapshots/sha256", root + "/tmp", root + "/locks"] {
            if mkdir(d, 0o700) != 0 && errno != EEXIST { throw .store(path: d, operation: "mkdir", errno: errno) }
        }
    }

    public func blobPath(_ d: Digest) -> String { root + "/blobs/sha256/" + d.hex }

    public func has(_ d: Digest) -> Bool { access(blobPath(d), F_OK) == 0 }

    /// The bytes of a stored blob (manifests and configs: small).
    public func read(_ d: Digest, maxBytes: Int = 16 << 20) throws(ImageError) -> [UInt8] {
        let fd = open(blobPath(d), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .store(path: blobPath(d), operation: "open", errno: errno) }
        defer { close(fd) }
        guard let bytes = readUpTo(fd, limit: maxBytes) else { throw .store(path: blobPath(d), operation: "read", errno: errno) }
        return bytes
    }

    /// Stores `bytes` (already verified by the caller, or hashed here) under their digest.
    @discardableResult
    public func put(_ bytes: [UInt8], registry: String = "local") throws(ImageError) -> Digest {
        let d = Digest(of: bytes)
        if has(d) { return d }
        let w = try BlobWriter(store: self, expected: d, size: Int64(bytes.count), registry: registry)
        _ = bytes.withUnsafeBytes { w.write($0) }
        try w.commit()
        return d
    }

    /// Takes the exclusive flock `locks/NAME` (waiting for another agent holding it) and
    /// returns its descriptor; closing it releases the lock.
    /// `shared`: a lease (many may hold it); `nonBlocking`: fail at once (EWOULDBLOCK) if held.
    func lock(_ name: String, shared: Bool = false, nonBlocking: Bool = false) throws(ImageError) -> Int32 {
        let path = root + "/locks/" + name
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .store(path: path, operation: "open", errno: errno) }
        while flock(fd, (shared ? LOCK_SH : LOCK_EX) | (nonBlocking ? LOCK_NB : 0)) != 0 {
            if errno == EINTR { continue }
            let e = errno
            close(fd)
            throw .store(path: path, operation: "flock", errno: e)
        }
        return fd
    }

    /// A temporary path in the store's `tmp/` folder.
    func temporaryPath(_ prefix: String) -> String {
        var rnd = SystemRandomNumberGenerator()
        return root + "/tmp/" + prefix + "-" + String(rnd.next(), radix: 36)
    }
}

/// Writes one blob while it downloads: hashes and counts every chunk, stops as soon as it
/// is larger than its descriptor says, and appears under its digest only if both match.
final class BlobWriter {
    let store: ContentStore
    let expected: Digest
    let size: Int64?
    let registry: String
    let tempPath: String
    private let fd: Int32
    private var hasher = SHA256()
    private(set) var written: Int64 = 0
    private(set) var writeErrno: Int32 = 0

    init(store: ContentStore, expected: Digest, size: Int64?, registry: String) throws(ImageError) {
        self.store = store
        self.expected = expected
        self.size = size
        self.registry = registry
        tempPath = store.temporaryPath("blob-" + expected.short)
        fd = open(tempPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .store(path: tempPath, operation: "create", errno: errno) }
    }

    deinit {
        // Not committed: the partial download goes.
        if fd >= 0 { close(fd) }
        unlink(tempPath)
    }

    /// Appends a chunk; false stops the transfer (too large, or the disk failed).
    func write(_ chunk: UnsafeRawBufferPointer) -> Bool {
        if let size, written + Int64(chunk.count) > size { written += Int64(chunk.count); return false }
        hasher.update(bufferPointer: chunk)
        written += Int64(chunk.count)
        guard let base = chunk.baseAddress else { return true }
        var off = 0
        while off < chunk.count {
            let n = Glibc.write(fd, base + off, chunk.count - off)
            if n < 0 { if errno == EINTR { continue }; writeErrno = errno; return false }
            off += n
        }
        return true
    }

    /// Starts the blob again (a retried download).
    func reset() throws(ImageError) {
        guard ftruncate(fd, 0) == 0, lseek(fd, 0, SEEK_SET) == 0 else { throw .store(path: tempPath, operation: "truncate", errno: errno) }
        hasher = SHA256()
        written = 0
        writeErrno = 0
    }

    /// Verifies size and digest, fsyncs and renames the blob into place. On a mismatch
    /// nothing is stored (the temporary file is removed) and the error names the digest.
    func commit() throws(ImageError) {
        if writeErrno != 0 { throw .store(path: tempPath, operation: "write", errno: writeErrno) }
        if let size, written != size {
            throw .sizeMismatch(registry: registry, digest: expected, expected: size, actual: written)
        }
        let actual = Digest(finalized: hasher)
        guard actual == expected else { throw .digestMismatch(registry: registry, expected: expected, actual: actual.description) }
        guard fsync(fd) == 0 else { throw .store(path: tempPath, operation: "fsync", errno: errno) }
        let dest = store.blobPath(expected)
        guard rename(tempPath, dest) == 0 else { throw .store(path: dest, operation: "rename", errno: errno) }
        syncDirectory(store.root + "/blobs/sha256")
    }
}

func syncDirectory(_ path: String) {
    let d = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if d >= 0 { fsync(d); close(d) }
}
