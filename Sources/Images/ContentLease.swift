import AgentSupport
import FoundationEssentials
import Glibc

/// Content that no tagged image references yet but that something running still needs:
/// the layers and snapshots an `agent build` has made (or takes from its cache) until its
/// commit tags them. A lease is a file `locks/lease-RANDOM` that its owner holds locked
/// (`flock` LOCK_EX) for its whole life, one line per item (`blob HEX`, `snapshot NAME`).
/// `prune` keeps what a live lease lists and deletes the files of dead ones: an owner that
/// was killed took its lock with it.
///
/// Both sides hold the store's pull gate, so a prune never sees an item unlisted: the lease
/// is made, and each item written and then listed, with the gate shared (`holdPrune`);
/// prune reads the leases with it exclusive.
public final class ContentLease: @unchecked Sendable {
    private let lock = Lock()
    private var fd: Int32
    let path: String

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { release() }

    /// Lists a blob (a layer the lease's owner wrote or reuses). Call with the gate held.
    public func add(blob digest: Digest) throws(ImageError) { try append("blob \(digest.hex)\n") }

    /// Lists snapshot folders (their paths or names) the owner made or uses. Gate held.
    public func add(snapshots paths: [String]) throws(ImageError) {
        try append(paths.map { "snapshot \($0.split(separator: "/").last.map(String.init) ?? $0)\n" }.joined())
    }

    private func append(_ text: String) throws(ImageError) {
        let bytes = Array(text.utf8)
        let (n, e): (Int, Int32) = lock.withLock {
            guard fd >= 0 else { return (-1, EBADF) }
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            return (n, errno)
        }
        guard n == bytes.count else { throw .store(path: path, operation: "write", errno: n < 0 ? e : EIO) }
    }

    /// Ends the lease (the file goes, then the lock): what it listed is prunable again
    /// unless a tag references it by now. Idempotent.
    public func release() {
        lock.withLock {
            guard fd >= 0 else { return }
            unlink(path)
            close(fd)
            fd = -1
        }
    }

    /// What the live leases in `locks` list; removes the files of dead ones. For `prune`,
    /// with the gate held exclusively (no owner appends meanwhile).
    static func live(in locks: String) -> (blobs: Set<String>, snapshots: Set<String>) {
        var blobs = Set<String>(), snapshots = Set<String>()
        for name in (try? FileManager.default.contentsOfDirectory(atPath: locks)) ?? [] where name.hasPrefix("lease-") {
            let path = locks + "/" + name
            let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            if flock(fd, LOCK_SH | LOCK_NB) == 0 {
                unlink(path)  // its owner is gone
                continue
            }
            // Bounded: a lease lists a build's layers, a line each.
            guard let text = readUpTo(fd, limit: 1 << 22) else { continue }
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { continue }
                if parts[0] == "blob" { blobs.insert(parts[1]) } else if parts[0] == "snapshot" { snapshots.insert(parts[1]) }
            }
        }
        return (blobs, snapshots)
    }

    private static func readUpTo(_ fd: Int32, limit: Int) -> String? {
        var out = [UInt8](), buf = [UInt8](repeating: 0, count: 65536)
        while out.count <= limit {
            let n = read(fd, &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return nil }
            if n == 0 { return String(decoding: out, as: UTF8.self) }
            out += buf[0..<n]
        }
        return nil
    }
}

extension ImageStore {
    /// A new content lease (made with the gate shared, so a prune running now finishes first
    /// and every later one sees it).
    public func contentLease() throws(ImageError) -> ContentLease {
        let gate = try content.lock("pull", shared: true)
        defer { close(gate) }
        // A new name each time (O_EXCL), close-on-exec from the start: a child forked
        // meanwhile must not inherit the lock.
        var fd: Int32 = -1, path = ""
        var rnd = SystemRandomNumberGenerator()
        repeat {
            path = content.root + "/locks/lease-" + String(rnd.next(), radix: 36)
            fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o600)
        } while fd < 0 && errno == EEXIST
        guard fd >= 0 else { throw .store(path: path, operation: "create", errno: errno) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let e = errno
            unlink(path); close(fd)
            throw .store(path: path, operation: "flock", errno: e)
        }
        return ContentLease(fd: fd, path: path)
    }

    /// Holds `agent image prune` off (the pull gate shared) until `end()`: what is written
    /// and listed in a lease in between is never seen unlisted by a prune.
    public func holdPrune() throws(ImageError) -> PruneHold { PruneHold(fd: try content.lock("pull", shared: true)) }
}

/// The pull gate held shared (`ImageStore.holdPrune`); `end()` releases it.
public final class PruneHold: @unchecked Sendable {
    private let lock = Lock()
    private var fd: Int32
    init(fd: Int32) { self.fd = fd }
    deinit { end() }
    /// Releases the gate. Idempotent.
    public func end() { lock.withLock { if fd >= 0 { close(fd); fd = -1 } } }
}
