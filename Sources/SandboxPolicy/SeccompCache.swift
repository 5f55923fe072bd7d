import Crypto
import AgentSupport
import FoundationEssentials
import Glibc
import Synchronization

/// Compiles profiles once and keeps the programs: in memory for the life of the process,
/// and optionally on disk as `<sha256>.bpf` in a directory the agent owns.
///
/// Compiling Docker's profile with libseccomp costs milliseconds per container start; a
/// cache hit costs a hash of the profile text. The key covers everything that changes the
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
        let key = cacheKey(profileText: profileText, capabilities: capabilities)
        if let cacheDirectory {
            switch SeccompDiskCache.load(directory: cacheDirectory, key: key) {
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
        let wrote = cacheDirectory.map { SeccompDiskCache.store(program, directory: $0, key: key) } ?? false
        state.withLock {
            Self.remember(program, profileText: profileText, mask: mask, in: &$0.programs)
            $0.statistics.compiles += 1
            if wrote { $0.statistics.diskWrites += 1 }
        }
        return program
    }

    /// Hex SHA-256 of everything the program depends on.
    func cacheKey(profileText: String, capabilities: CapabilitySet) -> String {
        var hasher = SHA256()
        let header = "agent-seccomp-v1\0\(host.architecture)\0\(host.kernelRelease)\0\(host.libseccompVersion)\0\(String(capabilities.mask, radix: 16))\0"
        Self.update(&hasher, header)
        Self.update(&hasher, profileText)
        return SeccompDiskCache.hex(hasher.finalize())
    }

    /// Hashes the text's UTF-8 in place (no copy into a `Data`).
    private static func update(_ hasher: inout SHA256, _ text: String) {
        var text = text
        text.withUTF8 { hasher.update(bufferPointer: UnsafeRawBufferPointer($0)) }
    }
}

/// `<key>.bpf` files: a header line, a JSON line with the program's metadata and the
/// SHA-256 of the instructions, then the raw instructions. Anything that does not check
/// out is reported as corrupt and replaced by the caller's fresh compile.
enum SeccompDiskCache {
    enum LoadResult {
        case hit(SeccompProgram)
        case missing
        case corrupt
    }

    private static let magic = "agent-seccomp-bpf 1\n"

    private struct Metadata: Encodable {
        var architectures: [String]
        var skippedNames: [String]
        var sha256: String
        var length: Int

        init(architectures: [String], skippedNames: [String], sha256: String, length: Int) {
            self.architectures = architectures
            self.skippedNames = skippedNames
            self.sha256 = sha256
            self.length = length
        }

        /// Reads the metadata line with the agent's strict JSON reader (JSONDecoder costs a
        /// few hundred microseconds on this hot path). Unknown keys are ignored; a missing
        /// or mistyped one makes the file corrupt.
        init?(line: ArraySlice<UInt8>) {
            func strings(_ value: JSONValue?) -> [String]? {
                guard case .array(let items)? = value else { return nil }
                var out: [String] = []
                for item in items {
                    guard case .string(let s) = item else { return nil }
                    out.append(s)
                }
                return out
            }
            guard case .object(let fields)? = try? JSONReader.parse(line),
                  let architectures = strings(fields["architectures"]),
                  let skippedNames = strings(fields["skippedNames"]),
                  case .string(let sha256)? = fields["sha256"],
                  case .unsigned(let length)? = fields["length"], length <= UInt64(Int.max) else { return nil }
            self.init(architectures: architectures, skippedNames: skippedNames, sha256: sha256, length: Int(length))
        }
    }

    static func path(directory: String, key: String) -> String { "\(directory)/\(key).bpf" }

    static func load(directory: String, key: String) -> LoadResult {
        let fd = open(path(directory: directory, key: key), O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        if fd < 0 { return errno == ENOENT ? .missing : .corrupt }
        defer { close(fd) }
        // The program is loaded into every container, so only trust a file nobody else
        // could have written; anything else is replaced by a fresh compile.
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_uid == geteuid(),
              info.st_mode & 0o022 == 0 else {
            return .corrupt
        }
        let limit = 16 << 20
        guard let data = readUpTo(fd, limit: limit + 1), data.count <= limit else { return .corrupt }
        let magicBytes = Array(magic.utf8)
        guard data.starts(with: magicBytes),
              let newline = data[magicBytes.count...].firstIndex(of: UInt8(ascii: "\n")) else {
            return .corrupt
        }
        let line = data[magicBytes.count..<newline]
        guard let meta = Metadata(line: line) else {
            return .corrupt
        }
        let bytes = Array(data[(newline + 1)...])
        guard bytes.count == meta.length, bytes.count > 0, bytes.count % 8 == 0,
              sha256Hex(bytes) == meta.sha256 else {
            return .corrupt
        }
        return .hit(SeccompProgram(bytes: bytes, architectures: meta.architectures, skippedNames: meta.skippedNames))
    }

    static func sha256Hex(_ bytes: [UInt8]) -> String {
        var hasher = SHA256()
        bytes.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        return hex(hasher.finalize())
    }

    /// Writes to a temporary file in the same directory and renames it into place, so a
    /// reader never sees half a file. Failure only costs a future compile: returns `false`.
    static func store(_ program: SeccompProgram, directory: String, key: String) -> Bool {
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                 attributes: [.posixPermissions: 0o700])
        let meta = Metadata(architectures: program.architectures, skippedNames: program.skippedNames,
                            sha256: sha256Hex(program.bytes), length: program.bytes.count)
        guard let metaJSON = try? JSONEncoder().encode(meta) else { return false }
        var contents = Data(magic.utf8)
        contents.append(metaJSON)
        contents.append(UInt8(ascii: "\n"))
        contents.append(contentsOf: program.bytes)

        let final = path(directory: directory, key: key)
        let temporary = "\(directory)/.\(key).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return false }
        let written = writeAll(fd, contents)
        let closed = close(fd) == 0
        guard written, closed, rename(temporary, final) == 0 else {
            unlink(temporary)
            return false
        }
        return true
    }

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in digest {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xf)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
