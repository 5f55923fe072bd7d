#if canImport(Glibc)
import Glibc
#endif

/// Where a secret's value is read from on the agent's side. Only operator input (a
/// `--secret` flag, the agent policy) ever becomes one.
enum SecretSource: Sendable, Equatable {
    /// A file, absolute.
    case file(String)
    /// A variable of the agent's own environment.
    case env(String)

    /// How error messages name this source: `file "/p/npm"` or `environment variable "CI_TOKEN"`.
    var displayName: String {
        switch self {
        case .file(let path): return "file \(SecretError.quote(path))"
        case .env(let name): return "environment variable \(SecretError.quote(name))"
        }
    }
}

/// What looking up one secret source found.
enum Lookup: Sendable {
    case found([UInt8])
    /// Nothing there; one clause per place looked at (`file "/p" does not exist`).
    case missing([String])
}

/// Reads secret values from the agent's environment and files, into memory only.
/// "Not there" is a `Lookup.missing` (the caller decides whether that is an error);
/// "there but unusable" (too large, unreadable, a directory) always throws.
struct SourceReader: Sendable {
    var environment: [String: String]
    var maxBytes: Int

    /// Reads one configured source. `origin` says where it was configured, for messages.
    func read(id: String, _ source: SecretSource, origin: String) throws -> Lookup {
        let named = source.displayName + (origin.isEmpty ? "" : " " + origin)
        switch source {
        case .env(let name):
            guard let value = environment[name] else { return .missing(["\(source.displayName) is not set"]) }
            let bytes = Array(value.utf8)
            guard bytes.count <= maxBytes else {
                throw SecretError.tooLarge(id: id, source: named, bytes: bytes.count, limit: maxBytes)
            }
            return .found(bytes)
        case .file(let path):
            guard let bytes = try readFile(path, id: id, named: named) else {
                return .missing(["\(source.displayName) does not exist"])
            }
            return .found(bytes)
        }
    }

    /// BuildKit's default for `--secret id=x` without `src`/`env`: the environment variable
    /// named like the id if it is set (even to ""), else the file named like the id in
    /// `directory`. Only for the operator's own flag: never for an id the job names.
    func automatic(id: String, directory: String, origin: String) throws -> Lookup {
        if environment[id] != nil { return try read(id: id, .env(id), origin: origin) }
        let path = directory.hasSuffix("/") ? directory + id : directory + "/" + id
        switch try read(id: id, .file(path), origin: origin) {
        case .found(let value): return .found(value)
        case .missing(let places):
            return .missing(["\(SecretSource.env(id).displayName) is not set"] + places)
        }
    }

    /// The file's bytes, or nil if there is no such file. Symlinks are followed: the file is
    /// on the agent's side and named by the operator (a flag or the policy), never by a job.
    private func readFile(_ path: String, id: String, named: String) throws -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)
        if fd < 0 {
            let code = errno
            if code == ENOENT || code == ENOTDIR { return nil }
            throw SecretError.unreadable(id: id, source: named, reason: Self.describe(errno: code))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw SecretError.unreadable(id: id, source: named, reason: Self.describe(errno: errno))
        }
        let type = info.st_mode & S_IFMT
        if type == S_IFDIR { throw SecretError.unreadable(id: id, source: named, reason: "it is a directory") }
        let isRegular = type == S_IFREG
        if isRegular && Int(info.st_size) > maxBytes {
            throw SecretError.tooLarge(id: id, source: named, bytes: Int(info.st_size), limit: maxBytes)
        }
        // Reading one byte past the limit tells "exactly at the limit" from "over it" for
        // pipes and for files that grow while we read them.
        var value: [UInt8] = []
        value.reserveCapacity(isRegular ? min(Int(info.st_size), maxBytes) : 4096)
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while value.count <= maxBytes {
            let want = min(chunk.count, maxBytes + 1 - value.count)
            let got = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, want) }
            if got < 0 {
                if errno == EINTR { continue }
                throw SecretError.unreadable(id: id, source: named, reason: Self.describe(errno: errno))
            }
            if got == 0 { break }
            value.append(contentsOf: chunk[0..<got])
        }
        if value.count > maxBytes { throw SecretError.tooLarge(id: id, source: named, bytes: nil, limit: maxBytes) }
        return value
    }

    static func describe(errno code: Int32) -> String {
        String(cString: strerror(code)).lowercased()
    }
}
