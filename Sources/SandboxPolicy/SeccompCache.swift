import AgentSupport
import FoundationEssentials
import Glibc
import Synchronization

/// Compiles profiles once and keeps the programs: in memory for the life of the process,
/// and optionally on disk as `<key>.bpf` in a directory the agent owns (SeccompDiskCache).
///
/// Compiling Docker's profile with libseccomp costs milliseconds per container start; a
/// disk hit costs one read and a byte comparison of the profile text. The key covers everything that changes the
/// program: the profile's exact text, the capability mask, the architecture, the kernel
/// release (`minKernel`) and the libseccomp version (syscall tables).
public final class SeccompCache: Sendable {
    /// What the cache did so far; tests count hits instead of timing them.
    public struct Statistics: Sendable, Equatable {
        /// Programs built with libseccomp.
        public var compiles = 0
        public var memoryHits = 0
        public var diskHits = 0
        /// Cache files that existed but were unreadable or corrupt (they are rewritten).
        public var diskRejected = 0
        public var diskWrites = 0
        public init() {}
    }

    /// The process-wide cache `SeccompPolicy.compile` uses.
    public static let shared = SeccompCache()

    /// Where an agent keeps compiled programs between processes unless told otherwise:
    /// `$XDG_CACHE_HOME/agent/seccomp`, else `$HOME/.cache/agent/seccomp`; `nil` without
    /// either. Each `agent exec` is a new process, so only a disk cache saves the compile.
    /// This is the preferred folder only; `defaultDirectory()` falls back when it is not writable.
    public static func defaultDirectory(environment: [String: String]) -> String? {
        if let xdg = environment["XDG_CACHE_HOME"], xdg.hasPrefix("/") { return xdg + "/agent/seccomp" }
        if let home = environment["HOME"], home.hasPrefix("/") { return home + "/.cache/agent/seccomp" }
        return nil
    }

    /// The cache folder for this process: `defaultDirectory(environment:)` when it (or the
    /// nearest folder above it that exists) is writable, else the private fallback
    /// (`fallbackDirectory`), else `nil` (compile at every start). Reads only the variables
    /// it needs (no copy of the whole environment into a dictionary).
    public static func defaultDirectory() -> String? {
        func variable(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
        var preferred: String?
        if let xdg = variable("XDG_CACHE_HOME"), xdg.hasPrefix("/") {
            preferred = xdg + "/agent/seccomp"
        } else if let home = variable("HOME"), home.hasPrefix("/") {
            preferred = home + "/.cache/agent/seccomp"
        }
        if let preferred, isWritable(preferred) { return preferred }
        return prepareFallback(fallbackDirectory(runtimeDirectory: variable("XDG_RUNTIME_DIR"), uid: geteuid()))
    }

    /// The fallback for an unwritable HOME: `$XDG_RUNTIME_DIR/agent-seccomp` (a per-user
    /// tmpfs) when set, else `/tmp/agent-seccomp-<uid>`.
    public static func fallbackDirectory(runtimeDirectory: String?, uid: uid_t) -> String {
        if let run = runtimeDirectory, run.hasPrefix("/"), run.count > 1 { return run + "/agent-seccomp" }
        return "/tmp/agent-seccomp-\(uid)"
    }

    /// Creates `path` with mode 0700 if missing and returns it only if it is then a real
    /// folder (lstat: not a symlink) owned by this user with mode exactly 0700. In /tmp
    /// anyone may create that name first: a folder someone else made, or a symlink, is
    /// refused (`nil`), never used or changed. The name is the last component only; its
    /// parent is /tmp or the runtime folder, which the user cannot be tricked through.
    public static func prepareFallback(_ path: String) -> String? {
        if mkdir(path, 0o700) != 0 && errno != EEXIST { return nil }
        var info = stat()
        guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR, info.st_uid == geteuid(),
              info.st_mode & 0o777 == 0o700 else {
            return nil
        }
        return path
    }

    /// Whether `path`, or the nearest folder above it that exists (where `store` would
    /// create it), is writable and searchable by this process.
    static func isWritable(_ path: String) -> Bool {
        var candidate = path
        while true {
            var info = stat()
            if stat(candidate, &info) == 0 {
                return info.st_mode & S_IFMT == S_IFDIR && access(candidate, W_OK | X_OK) == 0
            }
            guard errno == ENOENT || errno == ENOTDIR, let slash = candidate.lastIndex(of: "/") else { return false }
            if slash == candidate.startIndex { return access("/", W_OK | X_OK) == 0 }
            candidate = String(candidate[..<slash])
        }
    }

    private let host: SeccompHost
    /// In memory the key is the text itself (the host is fixed per cache); the SHA-256 key is
    /// only for files. A process uses a handful of profiles, so a list searched in order does:
    /// comparing texts is cheap (immediate when they share storage, as every use of one
    /// profile does) where a dictionary would hash the whole text on each lookup.
    private struct MemoryEntry {
        var profileText: String
        var mask: UInt64
        var program: SeccompProgram
    }

    private let state = Mutex<(programs: [MemoryEntry], statistics: Statistics)>(([], Statistics()))

    private static func remember(_ program: SeccompProgram, profileText: String, mask: UInt64,
                                 in programs: inout [MemoryEntry]) {
        let entry = MemoryEntry(profileText: profileText, mask: mask, program: program)
        if let i = programs.firstIndex(where: { $0.mask == mask && $0.profileText == profileText }) {
            programs[i] = entry
        } else {
            programs.append(entry)
        }
    }

    /// A cache of its own (tests and `agent debug seccomp` use one to start cold).
    public init(host: SeccompHost = .current) {
        self.host = host
    }

    public var statistics: Statistics { state.withLock { $0.statistics } }

    /// Forgets the in-memory programs (the disk cache stays).
    public func removeAll() { state.withLock { $0.programs.removeAll() } }

    /// The program for `profileText` and `capabilities` on this host, from memory, else
    /// from `cacheDirectory` (when given), else compiled and stored in both.
    public func program(profileText: String, capabilities: CapabilitySet,
                        cacheDirectory: String? = nil) throws -> SeccompProgram {
        let mask = capabilities.mask
        if let hit = state.withLock({ s -> SeccompProgram? in
            guard let p = s.programs.first(where: { $0.mask == mask && $0.profileText == profileText })?.program else {
                return nil
            }
            s.statistics.memoryHits += 1
            return p
        }) {
            return hit
        }
        let identity = self.identity(profileText: profileText, capabilities: capabilities)
        let key = SeccompDiskCache.key(identity)
        if let cacheDirectory {
            switch SeccompDiskCache.load(directory: cacheDirectory, key: key, identity: identity) {
            case .hit(let program):
                state.withLock {
                    Self.remember(program, profileText: profileText, mask: mask, in: &$0.programs)
                    $0.statistics.diskHits += 1
                }
                return program
            case .corrupt:
                state.withLock { $0.statistics.diskRejected += 1 }
            case .missing:
                break
            }
        }
        // Compiled outside the lock: two threads missing at once both compile the same
        // bytes, which is cheaper than making every other profile wait.
        let profile = try SeccompProfile(json: profileText)
        let program = try SeccompCompiler.compile(profile, capabilities: capabilities, host: host)
        let wrote = cacheDirectory.map { SeccompDiskCache.store(program, directory: $0, key: key, identity: identity) } ?? false
        state.withLock {
            Self.remember(program, profileText: profileText, mask: mask, in: &$0.programs)
            $0.statistics.compiles += 1
            if wrote { $0.statistics.diskWrites += 1 }
        }
        return program
    }

    /// Everything the program depends on, as the bytes a cache file must hold to be used:
    /// the host (architecture, kernel release for `minKernel`, libseccomp version for its
    /// syscall tables), the capability mask and the profile's exact text.
    func identity(profileText: String, capabilities: CapabilitySet) -> [UInt8] {
        let header = "agent-seccomp-v2\0\(host.architecture)\0\(host.kernelRelease)\0\(host.libseccompVersion)\0\(String(capabilities.mask, radix: 16))\0"
        return Array(header.utf8) + Array(profileText.utf8)
    }

    /// The file name's key for `identity` (see SeccompDiskCache.key).
    func cacheKey(profileText: String, capabilities: CapabilitySet) -> String {
        SeccompDiskCache.key(identity(profileText: profileText, capabilities: capabilities))
    }
}
