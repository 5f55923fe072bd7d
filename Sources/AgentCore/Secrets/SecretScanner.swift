#if canImport(Glibc)
import Glibc
#endif

/// A secret found in a file: which file and which secret, never the value.
public struct SecretLeak: Sendable, Hashable, CustomStringConvertible {
    /// The file as the caller named it (an artifact path).
    public var file: String
    public var secretID: String

    public init(file: String, secretID: String) {
        self.file = file
        self.secretID = secretID
    }

    public var description: String {
        "\(SecretError.quote(file)) contains secret \(SecretError.quote(secretID))"
    }
}

/// A file could not be scanned for secrets. Names the file and the reason.
public struct SecretScanError: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    public var description: String { "cannot scan \(SecretError.quote(path)) for secrets: \(reason)" }
}

/// Scans files (artifacts) for any secret value or encoded form of one, with the job's
/// `SecretMatcher`. Files are read in chunks with the match state carried across them, so
/// a value that straddles two chunks is found and memory stays flat for large files.
public struct SecretScanner: Sendable {
    public let matcher: SecretMatcher
    /// Bytes read per `read(2)`.
    public var chunkSize: Int

    public init(matcher: SecretMatcher, chunkSize: Int = 256 * 1024) {
        self.matcher = matcher
        self.chunkSize = max(1, chunkSize)
    }

    /// Scans an open file from its current offset to its end. `path` only names it in the
    /// result and in errors. The descriptor is not closed.
    public func scan(fileDescriptor: Int32, path: String) throws -> [SecretLeak] {
        guard !matcher.isEmpty else { return [] }
        var session = Session(matcher: matcher, capacity: chunkSize)
        while true {
            let got = session.readMore(from: fileDescriptor)
            if got < 0 {
                if errno == EINTR { continue }
                throw SecretScanError(path: path, reason: SourceReader.describe(errno: errno))
            }
            if got == 0 { break }
        }
        return session.leaks(file: path)
    }

    /// Opens and scans the file at `path`. A symbolic link or anything but a regular file
    /// is refused rather than followed or read (a FIFO would block, a link could point
    /// anywhere).
    public func scan(path: String) throws -> [SecretLeak] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK)
        if fd < 0 {
            let code = errno
            throw SecretScanError(path: path, reason: code == ELOOP ? "it is a symbolic link" : SourceReader.describe(errno: code))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw SecretScanError(path: path, reason: SourceReader.describe(errno: errno)) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw SecretScanError(path: path, reason: "not a regular file") }
        return try scan(fileDescriptor: fd, path: path)
    }

    /// For the artifact collector's scanner hook: scans an open artifact copy and returns
    /// why it must not be kept (`it contains secret "npm"`), or nil when it is clean. The
    /// reason names the secrets, never their values. After the artifacts work is merged,
    /// `ArtifactScanner` conformance is one line on top of this:
    /// `rejectionReason(path:fileDescriptor:).map { .reject($0) } ?? .clean`.
    public func rejectionReason(path: String, fileDescriptor: Int32) throws -> String? {
        let leaks = try scan(fileDescriptor: fileDescriptor, path: path)
        guard !leaks.isEmpty else { return nil }
        let ids = leaks.map { SecretError.quote($0.secretID) }.joined(separator: ", ")
        return leaks.count == 1 ? "it contains secret \(ids)" : "it contains secrets \(ids)"
    }

    /// Scans bytes already in memory.
    public func scan(bytes: [UInt8], path: String) -> [SecretLeak] {
        guard !matcher.isEmpty else { return [] }
        var found = Set<Int>()
        var cursor = MatchCursor()
        _ = bytes.withUnsafeBufferPointer { buffer in
            matcher.scan(buffer, base: 0, cursor: &cursor) { _, _, state in
                matcher.forEachSecret(endingIn: state) { found.insert($0) }
            }
        }
        return found.map { SecretLeak(file: path, secretID: matcher.secretIDs[$0]) }.sorted { $0.secretID < $1.secretID }
    }

    /// The read buffer and match state of one file scan. The buffer keeps the bytes after
    /// the last commit point (fewer than the longest pattern) in front of each new chunk.
    private struct Session {
        let matcher: SecretMatcher
        let capacity: Int
        var buffer: [UInt8]
        var held = 0
        var base = 0
        var cursor = MatchCursor()
        var found = Set<Int>()

        init(matcher: SecretMatcher, capacity: Int) {
            self.matcher = matcher
            self.capacity = capacity
            buffer = [UInt8](repeating: 0, count: capacity + matcher.longestPattern)
        }

        /// Reads one chunk and scans it; returns what `read(2)` returned.
        mutating func readMore(from fd: Int32) -> Int {
            let held = self.held
            let wanted = capacity
            let got = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + held, wanted) }
            guard got > 0 else { return got }
            let count = held + got
            var cursor = self.cursor
            var found = self.found
            let matcher = self.matcher
            let commit = buffer.withUnsafeBufferPointer { all in
                matcher.scan(UnsafeBufferPointer(rebasing: all[0..<count]), base: base, cursor: &cursor) { _, _, state in
                    matcher.forEachSecret(endingIn: state) { found.insert($0) }
                }
            }
            self.cursor = cursor
            self.found = found
            let keep = base + count - commit
            buffer.withUnsafeMutableBytes { raw in
                let start = raw.baseAddress!
                memmove(start, start + (commit - base), keep)
            }
            self.held = keep
            base = commit
            return got
        }

        func leaks(file: String) -> [SecretLeak] {
            found.map { SecretLeak(file: file, secretID: matcher.secretIDs[$0]) }.sorted { $0.secretID < $1.secretID }
        }
    }
}
