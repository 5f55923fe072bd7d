import AgentSupport
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// A failed write of a results file; names the file and the operation.
public struct ReportFileError: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var operation: String
    public var errno: Int32

    public init(path: String, operation: String, errno: Int32) {
        self.path = path
        self.operation = operation
        self.errno = errno
    }

    public var description: String {
        "\(path): \(operation) failed: \(String(cString: strerror(errno)))"
    }
}

/// Whole-file writes that readers never see half done: write a temporary file next to
/// the target (created exclusively, so an existing symlink is never written through),
/// fsync it, then rename it over the target.
enum AtomicReportFile {
    static func write(_ bytes: [UInt8], to path: String, mode: mode_t) throws {
        let dir = path.deletingLastPathComponent
        let base = path.lastPathComponent
        let temp = (dir.isEmpty ? "." : dir) + "/.\(base).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else { throw ReportFileError(path: temp, operation: "create", errno: errno) }
        var ok = false
        defer {
            if !ok { unlink(temp) }
        }
        do {
            defer { close(fd) }
            try writeAll(fd: fd, bytes: bytes, path: temp)
            guard fsync(fd) == 0 else { throw ReportFileError(path: temp, operation: "fsync", errno: errno) }
        }
        guard rename(temp, path) == 0 else { throw ReportFileError(path: path, operation: "rename", errno: errno) }
        ok = true
    }

    static func writeAll(fd: Int32, bytes: [UInt8], path: String) throws {
        try bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw ReportFileError(path: path, operation: "write", errno: errno)
                }
                offset += n
            }
        }
    }
}
