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
    public static func defaultDirectory(environment: [String: String]) -> String? {
        if let xdg = environment["XDG_CACHE_HOME"], xdg.hasPrefix("/") { return xdg + "/agent/seccomp" }
        if let home = environment["HOME"], home.hasPrefix("/") { return home + "/.cache/agent/seccomp" }
        return nil
    }

    private let host: SeccompHost
    /// In memory the key is the text itself: hashing it for a dictionary costs less than a
    /// SHA-256, and the host is fixed per cache. The SHA-256 key is only for files.
    private struct MemoryKey: Hashable {
        var profileText: String
        var mask: UInt64
    }

    private let state = Mutex<(programs: [MemoryKey: SeccompProgram], statistics: Statistics)>(([:], Statistics()))

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
        let memoryKey = MemoryKey(profileText: profileText, mask: capabilities.mask)
        if let hit = state.withLock({ s -> SeccompProgram? in
            guard let p = s.programs[memoryKey] else { return nil }
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
                    $0.programs[memoryKey] = program
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
            $0.programs[memoryKey] = program
            $0.statistics.compiles += 1
            if wrote { $0.statistics.diskWrites += 1 }
        }
        return program
    }

    /// Hex SHA-256 of everything the program depends on.
    func cacheKey(profileText: String, capabilities: CapabilitySet) -> String {
        var hasher = SHA256()
        let header = "agent-seccomp-v1\0\(host.architecture)\0\(host.kernelRelease)\0\(host.libseccompVersion)\0\(String(capabilities.mask, radix: 16))\0"
        hasher.update(data: Data(header.utf8))
        hasher.update(data: Data(profileText.utf8))
        return SeccompDiskCache.hex(hasher.finalize())
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

    private struct Metadata: Codable {
        var architectures: [String]
        var skippedNames: [String]
        var sha256: String
        var length: Int
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
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return .corrupt }
            if n == 0 { break }
            data.append(contentsOf: buffer[0..<n])
            if data.count > 16 << 20 { return .corrupt }
        }
        let magicBytes = Data(magic.utf8)
        guard data.starts(with: magicBytes),
              let newline = data[magicBytes.count...].firstIndex(of: UInt8(ascii: "\n")),
              let meta = try? JSONDecoder().decode(Metadata.self, from: data[magicBytes.count..<newline]) else {
            return .corrupt
        }
        let bytes = [UInt8](data[(newline + 1)...])
        guard bytes.count == meta.length, bytes.count > 0, bytes.count % 8 == 0,
              hex(SHA256.hash(data: bytes)) == meta.sha256 else {
            return .corrupt
        }
        return .hit(SeccompProgram(bytes: bytes, architectures: meta.architectures, skippedNames: meta.skippedNames))
    }

    /// Writes to a temporary file in the same directory and renames it into place, so a
    /// reader never sees half a file. Failure only costs a future compile: returns `false`.
    static func store(_ program: SeccompProgram, directory: String, key: String) -> Bool {
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                 attributes: [.posixPermissions: 0o700])
        let meta = Metadata(architectures: program.architectures, skippedNames: program.skippedNames,
                            sha256: hex(SHA256.hash(data: program.bytes)), length: program.bytes.count)
        guard let metaJSON = try? JSONEncoder().encode(meta) else { return false }
        var contents = Data(magic.utf8)
        contents.append(metaJSON)
        contents.append(UInt8(ascii: "\n"))
        contents.append(contentsOf: program.bytes)

        let final = path(directory: directory, key: key)
        let temporary = "\(directory)/.\(key).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return false }
        let written = contents.withUnsafeBytes { raw -> Bool in
            var done = 0
            while done < raw.count {
                let n = write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                done += n
            }
            return true
        }
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
