import AgentSupport
import CAgentSandbox
import FoundationEssentials
import Glibc
import Sandbox

/// A host folder or file a job was granted, opened once at admission and held open for the
/// job's whole life (so its inode cannot be reused). Containers mount it through `host`,
/// which carries its identity: the shim mounts it only while the path still leads there.
public final class AdmittedPath: @unchecked Sendable {
    /// An `O_PATH` descriptor. Immutable; closed when the value goes away.
    public let descriptor: Int32
    /// Canonical path and identity, for the shim.
    public let host: HostPath
    /// What the job wrote, for messages.
    public let requested: String
    public let isDirectory: Bool

    init(descriptor: Int32, host: HostPath, requested: String, isDirectory: Bool) {
        self.descriptor = descriptor
        self.host = host
        self.requested = requested
        self.isDirectory = isDirectory
    }

    deinit { close(descriptor) }

    /// Whether `other` is this folder or lies below it (by identity, walking up from `other`).
    public func contains(_ other: AdmittedPath) -> Bool {
        guard let mine = host.identity else { return false }
        var cur = fcntl(other.descriptor, F_DUPFD_CLOEXEC, 0)
        guard cur >= 0 else { return false }
        defer { close(cur) }
        var previous: FileIdentity?
        for _ in 0..<4096 {
            guard let id = FileIdentity(descriptor: cur) else { return false }
            if id == mine { return true }
            if id == previous { return false }
            previous = id
            let parent = ProtectedPaths.parent(of: cur)
            guard parent >= 0 else { return false }
            close(cur)
            cur = parent
        }
        return false
    }
}

/// Where one kind of job path may lead: beneath the job file's folder (relative paths), or
/// beneath a root the operator granted (absolute paths, and relative ones that leave the
/// job's folder).
struct PathGrant: Sendable {
    /// The job file's folder.
    var base: String
    /// Absolute roots the operator granted, with how the policy or flag names them.
    var roots: [String]
    /// `workspaceRoots` / `rootfsRoots` / `allowedBindSources`, for messages.
    var rootsKey: String
    /// Where an operator grants more, for messages.
    var howToGrant: String
}

/// An errno as an `Error`, for `Result`.
struct Errno: Error { var code: Int32; init(_ code: Int32) { self.code = code } }

/// Opens the host paths a job names, beneath what the operator granted, never following a
/// symlink out (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`), and refuses the
/// agent's own files (`ProtectedPaths`). Nothing is created or written.
enum HostPathGate {
    enum Kind: String { case directory = "a folder", directoryOrFile = "a folder or a file" }

    /// Opens `requested` (as the job wrote it) for the job key at `jsonPath` of `file`.
    static func open(_ requested: String, grant: PathGrant, protected: ProtectedPaths, kind: Kind,
                     file: String, jsonPath: String) throws -> AdmittedPath {
        func refuse(_ message: String) -> JobValidationError {
            JobValidationError(file: file, path: jsonPath, message: "\(jsonQuoted(requested)) \(message)")
        }
        guard !requested.isEmpty, !requested.utf8.contains(0) else { throw refuse("is not a path") }
        let fd: Int32
        if requested.hasPrefix("/") {
            fd = try openUnderRoots(lexical(requested), grant: grant, protected: protected, refuse: refuse)
        } else {
            switch beneath(grant.base, requested) {
            case .success(let opened): fd = opened
            case .failure(let e) where e.code == EXDEV:
                // It leaves the job's folder: allowed only if it lands beneath a granted root.
                guard !grant.roots.isEmpty else {
                    throw refuse("leaves the job file's folder (\(grant.base)); name a path inside it, or one beneath a root the operator grants (\(grant.howToGrant))")
                }
                fd = try openUnderRoots(lexical(grant.base + "/" + requested), grant: grant, protected: protected, refuse: refuse)
            case .failure(let e):
                throw refuse(describe(e.code, base: grant.base))
            }
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else { let e = errno; close(fd); throw refuse("cannot be examined: \(String(cString: strerror(e)))") }
        let type = st.st_mode & S_IFMT
        let isDirectory = type == S_IFDIR
        guard isDirectory || (kind == .directoryOrFile && type == S_IFREG) else {
            close(fd)
            throw refuse("is not \(kind.rawValue)")
        }
        if let why = protected.refusal(for: fd) {
            close(fd)
            throw refuse("cannot be given to a job: \(why), which no job may reach")
        }
        guard let host = HostPath(descriptor: fd) else {
            close(fd)
            throw refuse("cannot be examined (no canonical path)")
        }
        return AdmittedPath(descriptor: fd, host: host, requested: requested, isDirectory: isDirectory)
    }

    /// Opens absolute `path` beneath the first granted root that is a prefix of it (compared
    /// by components as both are written). A root that is, contains or lies inside one of
    /// the agent's own folders is refused as a whole: everything below `/home` would
    /// otherwise include the agent's `~/.ssh`.
    private static func openUnderRoots(_ path: [Substring], grant: PathGrant, protected: ProtectedPaths,
                                       refuse: (String) -> JobValidationError) throws -> Int32 {
        for root in grant.roots {
            let r = lexical(root)
            guard path.starts(with: r) else { continue }
            let rootFD = Glibc.open(root, O_PATH | O_DIRECTORY | O_CLOEXEC)
            if rootFD >= 0 {
                let why = protected.refusal(for: rootFD)
                close(rootFD)
                if let why {
                    throw refuse("is beneath \(jsonQuoted(root)) (\(grant.rootsKey)), which cannot be granted: \(why)")
                }
            }
            let rest = path.dropFirst(r.count).joined(separator: "/")
            switch beneath(root, rest) {
            case .success(let fd): return fd
            case .failure(let e): throw refuse(describe(e.code, base: root))
            }
        }
        let list = "[" + grant.roots.map(jsonQuoted).joined(separator: ", ") + "]"
        throw refuse("is outside the \(grant.rootsKey) the operator allows (\(grant.rootsKey): \(list); \(grant.howToGrant))")
    }

    /// openat2 beneath `root` (the operator's path, opened as written), `rest` relative.
    private static func beneath(_ root: String, _ rest: String) -> Result<Int32, Errno> {
        let dir = Glibc.open(root, O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard dir >= 0 else { return .failure(Errno(errno)) }
        defer { close(dir) }
        let fd = agent_resolve_open_beneath(dir, rest.isEmpty ? "." : rest, O_PATH)
        return fd >= 0 ? .success(fd) : .failure(Errno(errno))
    }

    /// Path components with `.` dropped and `..` applied lexically (never above `/`).
    static func lexical(_ path: String) -> [Substring] {
        var out: [Substring] = []
        for c in path.split(separator: "/") where c != "." {
            if c == ".." { if !out.isEmpty { out.removeLast() } } else { out.append(c) }
        }
        return out
    }

    private static func describe(_ code: Int32, base: String) -> String {
        switch code {
        case EXDEV: return "leads out of \(base) (through \"..\" or a symlink)"
        case ENOENT: return "does not exist"
        case ENOTDIR: return "does not exist (a part of it is not a folder)"
        case ELOOP: return "goes through too many symlinks"
        default: return "cannot be opened: \(String(cString: strerror(code)))"
        }
    }
}
