import Crypto
#if canImport(Glibc)
import Glibc
#endif

/// How artifact file contents are copied and hashed (`ci/bench/artifacts.sh` compares them).
public enum ArtifactCopyStrategy: String, Sendable, CaseIterable {
    /// Read 1 MiB, hash it, write it: one pass over the data, the hash is of exactly the
    /// bytes written.
    case readWrite = "read-write"
    /// `copy_file_range(2)` (the kernel copies, or reflinks where the filesystem can),
    /// then the copy is read back once for the hash. Falls back to `readWrite` where the
    /// kernel refuses (e.g. across some filesystems).
    case copyFileRange = "copy-file-range"
}

/// Copies one open file to another while computing its SHA-256. Owns a 1 MiB buffer, so
/// one copier serves a whole collection (used from one task at a time).
final class ArtifactCopier {
    /// Thrown when a file grows past what the budget has left while it is copied.
    struct LimitExceeded: Error {}

    static let chunk = 1 << 20
    let strategy: ArtifactCopyStrategy
    private let buffer: UnsafeMutableRawBufferPointer

    init(strategy: ArtifactCopyStrategy) {
        self.strategy = strategy
        buffer = .allocate(byteCount: Self.chunk, alignment: 4096)
    }

    deinit { buffer.deallocate() }

    /// Copies `src` (at offset 0) to `dst` (opened read-write, empty); returns the bytes
    /// copied and the hex SHA-256 of the copy. Throws `LimitExceeded` past `limit` bytes.
    func copy(from src: Int32, to dst: Int32, limit: UInt64, display: String) throws -> (bytes: UInt64, sha256: String) {
        if strategy == .copyFileRange, let copyFileRange = Self.copyFileRange {
            var total: UInt64 = 0
            while true {
                let want = Int(min(UInt64(1 << 30), limit - min(total, limit) + 1))
                let n = copyFileRange(src, nil, dst, nil, want, 0)
                if n < 0 {
                    if errno == EINTR { continue }
                    // Not supported for this pair: start over the portable way.
                    if total == 0, [EXDEV, EINVAL, ENOSYS, EOPNOTSUPP, EBADF].contains(errno) { break }
                    throw ArtifactSystemCallError(operation: "copy_file_range", path: display, errno: errno)
                }
                if n == 0 {
                    return (total, try hash(dst, display: display))
                }
                total += UInt64(n)
                if total > limit { throw LimitExceeded() }
            }
        }
        return try readWrite(from: src, to: dst, limit: limit, display: display)
    }

    private func readWrite(from src: Int32, to dst: Int32, limit: UInt64, display: String) throws -> (bytes: UInt64, sha256: String) {
        var hasher = SHA256()
        var total: UInt64 = 0
        while true {
            let n = read(src, buffer.baseAddress, buffer.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw ArtifactSystemCallError(operation: "read", path: display, errno: errno)
            }
            if n == 0 { break }
            total += UInt64(n)
            if total > limit { throw LimitExceeded() }
            let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            hasher.update(bufferPointer: chunk)
            var offset = 0
            while offset < n {
                let w = write(dst, chunk.baseAddress! + offset, n - offset)
                if w < 0 {
                    if errno == EINTR { continue }
                    throw ArtifactSystemCallError(operation: "write", path: display, errno: errno)
                }
                offset += w
            }
        }
        return (total, Self.hex(hasher.finalize()))
    }

    /// SHA-256 of a whole file read from offset 0 with `pread` (the fd offset is left alone).
    func hash(_ fd: Int32, display: String) throws -> String {
        var hasher = SHA256()
        var offset: off_t = 0
        while true {
            let n = pread(fd, buffer.baseAddress, buffer.count, offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw ArtifactSystemCallError(operation: "read", path: display, errno: errno)
            }
            if n == 0 { break }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            offset += off_t(n)
        }
        return Self.hex(hasher.finalize())
    }

    static func hex(_ digest: SHA256.Digest) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(64)
        for byte in digest {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    private typealias CopyFileRange = @convention(c) (Int32, UnsafeMutablePointer<Int64>?, Int32,
                                                       UnsafeMutablePointer<Int64>?, Int, UInt32) -> Int
    /// glibc has `copy_file_range` but the Swift Glibc module does not declare it (it is
    /// behind `_GNU_SOURCE`), so look the symbol up once.
    private static let copyFileRange: CopyFileRange? = {
        guard let symbol = dlsym(nil, "copy_file_range") else { return nil }
        return unsafeBitCast(symbol, to: CopyFileRange.self)
    }()
}
