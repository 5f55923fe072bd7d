import AgentSupport
import FoundationEssentials
import Glibc

/// The agent's private state folder. No container ever sees it: only specific cache and
/// volume data directories below it are bound into steps.
///
/// Layout:
/// ```
/// caches/<scope>/<escaped-id>/meta.json     metadata (JSON, replaced atomically)
/// caches/<scope>/<escaped-id>/data          the cache (instance 0)
/// caches/<scope>/<escaped-id>/data.<n>      extra instances for concurrent sharing=private
/// caches/.trash/                            entries being deleted
/// volumes/<scope>/<name>/data, volumes/<scope>/<name>/meta.json
/// volumes/.scoped                           marker: old volumes/<name>/ moved to scope default
/// jobs/                                     per-job workspace layers (the runner's)
/// locks/                                    flock files; never deleted, so a lock is never
///                                           taken on a file that another process unlinked
/// seccomp/                                  compiled BPF cache
/// ```
public struct StateDirectory: Sendable, Equatable {
    /// Absolute path of the state folder.
    public let root: String

    /// Uses `root` as is (it is created by `create()`).
    public init(root: String) {
        self.root = root
    }

    /// `--state-dir` if given, else `$XDG_STATE_HOME/agent`, else `~/.local/state/agent`.
    /// Relative paths resolve against the current directory.
    public static func resolve(explicit: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> StateDirectory {
        if let explicit, !explicit.isEmpty { return StateDirectory(root: absolute(explicit)) }
        if let xdg = environment["XDG_STATE_HOME"], xdg.hasPrefix("/") {
            return StateDirectory(root: xdg + "/agent")
        }
        var home = environment["HOME"] ?? ""
        if home.isEmpty, let pw = getpwuid(getuid()) { home = String(cString: pw.pointee.pw_dir) }
        guard home.hasPrefix("/") else { throw StateError(path: "~", message: "cannot find the home directory for the state folder; pass --state-dir") }
        return StateDirectory(root: home + "/.local/state/agent")
    }

    /// Resolves like `resolve(explicit:)` and creates the folder.
    public static func open(explicit: String?) throws -> StateDirectory {
        let s = try resolve(explicit: explicit)
        try s.create()
        return s
    }

    /// Creates the folder (mode 0700) and its subfolders. An existing folder that others can
    /// read is tightened to 0700, since it holds caches of private builds.
    public func create() throws {
        try Self.makeDirectory(root, mode: 0o700)
        var st = stat()
        guard lstat(root, &st) == 0 else { throw StateError(path: root, errno: errno, message: "cannot read") }
        // Someone else's folder (or /tmp) must never hold the agent's caches and locks.
        guard st.st_uid == geteuid() else {
            throw StateError(path: root, message: "state folder is not owned by the agent's user (uid \(geteuid()))")
        }
        if st.st_mode & 0o777 != 0o700 && chmod(root, 0o700) != 0 {
            throw StateError(path: root, errno: errno, message: "cannot set mode 0700")
        }
        for sub in ["caches", "volumes", "jobs", "locks", "locks/caches", "locks/volumes", "seccomp", "caches/.trash"] {
            try Self.makeDirectory(root + "/" + sub, mode: 0o700)
        }
    }

    public var caches: String { root + "/caches" }
    public var volumes: String { root + "/volumes" }
    public var jobs: String { root + "/jobs" }
    public var locks: String { root + "/locks" }
    public var seccomp: String { root + "/seccomp" }
    public var trash: String { root + "/caches/.trash" }

    /// `mkdir -p` with `mode` for the folders it creates; refuses a symlink anywhere it creates.
    static func makeDirectory(_ path: String, mode: mode_t) throws {
        var st = stat()
        if lstat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFDIR else { throw StateError(path: path, message: "exists and is not a directory") }
            return
        }
        let parent = path.deletingLastPathComponent
        if !parent.isEmpty && parent != path && parent != "/" { try makeDirectory(parent, mode: 0o700) }
        if mkdir(path, mode) != 0 && errno != EEXIST {
            throw StateError(path: path, errno: errno, message: "cannot create directory")
        }
    }

    static func absolute(_ path: String) -> String {
        path.lexicallyNormalizedPath(relativeTo: FileManager.default.currentDirectoryPath)
    }
}

/// A file-system failure in the state folder; names the path.
public struct StateError: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var errno: Int32?
    public var message: String

    public init(path: String, errno: Int32? = nil, message: String) {
        self.path = path
        self.errno = errno
        self.message = message
    }

    public var description: String {
        var s = "\(path): \(message)"
        if let errno { s += ": " + String(cString: strerror(errno)) }
        return s
    }
}

/// Small JSON files replaced atomically (write a temporary sibling, fsync, rename), so a
/// reader or a crash never sees half a file.
enum AtomicJSON {
    /// ISO 8601 with milliseconds. Whole seconds made "measured after last used" (the GC's
    /// shortcut) false whenever a job and its GC ran within the same second.
    static let preciseDates = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    static func write<T: Encodable>(_ value: T, to path: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        enc.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(date.formatted(preciseDates))
        }
        let data = try enc.encode(value) + Data("\n".utf8)
        let tmp = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = Glibc.open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw StateError(path: tmp, errno: errno, message: "cannot create") }
        let ok = data.withUnsafeBytes { buf -> Bool in
            var off = 0
            while off < buf.count {
                let n = Glibc.write(fd, buf.baseAddress! + off, buf.count - off)
                if n < 0 { if errno == EINTR { continue }; return false }
                off += n
            }
            return fsync(fd) == 0
        }
        let err = errno
        close(fd)
        guard ok else { unlink(tmp); throw StateError(path: tmp, errno: err, message: "cannot write") }
        if rename(tmp, path) != 0 {
            let e = errno
            unlink(tmp)
            throw StateError(path: path, errno: e, message: "cannot replace")
        }
    }

    static func read<T: Decodable>(_ type: T.Type, from path: String) -> T? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let dec = JSONDecoder()
        dec.dateDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            if let d = try? preciseDates.parse(text) { return d }
            // Files written before sub-second times.
            return try Date.ISO8601FormatStyle().parse(text)
        }
        return try? dec.decode(type, from: data)
    }
}
