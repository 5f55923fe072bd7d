import AgentSupport
import FoundationEssentials
import Glibc

/// `<key>.bpf` files: compiled programs kept between processes.
///
/// A file holds, in this order:
///
///     agent-seccomp-bpf 2\n
///     identity <N>\n<N bytes>\n          what the program was compiled from (SeccompCache.identity)
///     architectures <name,name,...>\n
///     skipped <name,name,...>\n
///     program <M> <checksum64 of the M bytes, 16 hex digits>\n<M bytes of sock_filter>
///
/// A file is used only when its identity equals the caller's byte for byte, so the key (a
/// 64-bit checksum of the identity) only names the file: a collision is a miss, never a wrong
/// program. The checksum catches a damaged file, as the previous format's SHA-256 did; the
/// folder is the user's own (0700, owner checked), so neither guards against an adversary,
/// who would need the agent's uid. Neither format parser nor hash needs swift-crypto or a
/// JSON reader: this runs at every `agent exec`, where their first use (type metadata,
/// conformance lookups) cost about 0.4 ms, a fifth of the agent's own start-up (perf).
/// Anything that does not check out is reported as corrupt and replaced by the caller's
/// fresh compile.
enum SeccompDiskCache {
    enum LoadResult {
        case hit(SeccompProgram)
        case missing
        case corrupt
    }

    private static let magic = Array("agent-seccomp-bpf 2\n".utf8)

    /// FNV-1a's 64-bit mixing over 8-byte little-endian words (then the tail bytes and the
    /// length): a file name and a damage check, not a cryptographic digest. Word-wise
    /// because byte-wise FNV over the 13 KB profile cost ~0.1 ms per start (perf).
    static func checksum64(_ bytes: [UInt8]) -> UInt64 {
        let prime: UInt64 = 0x0000_0100_0000_01b3
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        bytes.withUnsafeBytes { raw in
            let words = raw.count / 8
            for i in 0..<words {
                h ^= UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))
                h &*= prime
                h ^= h >> 29
            }
            for i in (words * 8)..<raw.count {
                h ^= UInt64(raw[i])
                h &*= prime
            }
        }
        h ^= UInt64(bytes.count)
        h &*= prime
        return h ^ (h >> 32)
    }

    static func hex16(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    /// The file name's key for an identity: 16 hex digits.
    static func key(_ identity: [UInt8]) -> String { hex16(checksum64(identity)) }

    static func path(directory: String, key: String) -> String { "\(directory)/\(key).bpf" }

    static func load(directory: String, key: String, identity: [UInt8]) -> LoadResult {
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
        guard let data = readUpTo(fd, limit: limit + 1), data.count <= limit,
              let program = parse(data, identity: identity) else {
            return .corrupt
        }
        return .hit(program)
    }

    /// The program in a file's bytes, or nil unless every field checks out.
    static func parse(_ data: [UInt8], identity: [UInt8]) -> SeccompProgram? {
        var r = Reader(data: data)
        guard r.take(magic),
              r.take("identity "), let n = r.number(until: "\n"), let stored = r.take(count: n), Self.same(stored, identity), r.take("\n"),
              r.take("architectures "), let archs = r.names(),
              r.take("skipped "), let skipped = r.names(),
              r.take("program "), let m = r.number(until: " "), let sum = r.hex(until: "\n") else { return nil }
        guard m > 0, m % 8 == 0, let slice = r.take(count: m), r.atEnd else { return nil }
        let bytes = Array(slice)
        guard checksum64(bytes) == sum else { return nil }
        return SeccompProgram(bytes: bytes, architectures: archs, skippedNames: skipped)
    }

    /// Byte-for-byte equality by memcmp (the generic `==` compared 13 KB element by element).
    static func same(_ a: ArraySlice<UInt8>, _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBytes { x in b.withUnsafeBytes { y in x.count == 0 || memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0 } }
    }

    /// The file's bytes for `program`, or nil when a name could not be written unambiguously.
    static func encode(_ program: SeccompProgram, identity: [UInt8]) -> [UInt8]? {
        let names = program.architectures + program.skippedNames
        guard !names.contains(where: { $0.isEmpty || $0.utf8.contains(where: { $0 == UInt8(ascii: ",") || $0 < 0x21 }) }) else {
            return nil
        }
        var out = magic
        out += Array("identity \(identity.count)\n".utf8) + identity + [UInt8(ascii: "\n")]
        out += Array("architectures \(program.architectures.joined(separator: ","))\n".utf8)
        out += Array("skipped \(program.skippedNames.joined(separator: ","))\n".utf8)
        out += Array("program \(program.bytes.count) \(hex16(checksum64(program.bytes)))\n".utf8)
        return out + program.bytes
    }

    /// Writes to a temporary file in the same directory and renames it into place, so a
    /// reader never sees half a file. Not fsynced: after a power loss a damaged file only
    /// fails its checksum and costs a compile. Failure only costs a future compile: `false`.
    static func store(_ program: SeccompProgram, directory: String, key: String, identity: [UInt8]) -> Bool {
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                 attributes: [.posixPermissions: 0o700])
        guard let contents = encode(program, identity: identity) else { return false }
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

    /// A cursor over a file's bytes; every read checks its bounds.
    private struct Reader {
        let data: [UInt8]
        var at = 0

        var atEnd: Bool { at == data.count }

        mutating func take(_ literal: [UInt8]) -> Bool {
            guard data.count - at >= literal.count, data[at..<at + literal.count].elementsEqual(literal) else { return false }
            at += literal.count
            return true
        }

        mutating func take(_ literal: String) -> Bool { take(Array(literal.utf8)) }

        mutating func take(count: Int) -> ArraySlice<UInt8>? {
            guard count >= 0, data.count - at >= count else { return nil }
            defer { at += count }
            return data[at..<at + count]
        }

        /// The bytes up to `end` (consumed with it), or nil if `end` does not follow.
        mutating func field(until end: UInt8) -> ArraySlice<UInt8>? {
            guard let i = data[at...].firstIndex(of: end) else { return nil }
            defer { at = i + 1 }
            return data[at..<i]
        }

        /// A decimal number of at most 9 digits, then `end`.
        mutating func number(until end: Character) -> Int? {
            guard let f = field(until: end.asciiValue!), !f.isEmpty, f.count <= 9,
                  f.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
            return f.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        }

        /// Exactly 16 lower-case hex digits, then `end`.
        mutating func hex(until end: Character) -> UInt64? {
            guard let f = field(until: end.asciiValue!), f.count == 16 else { return nil }
            var v: UInt64 = 0
            for c in f {
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): v = v << 4 | UInt64(c - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): v = v << 4 | UInt64(c - UInt8(ascii: "a") + 10)
                default: return nil
                }
            }
            return v
        }

        /// Comma-separated names up to the end of the line (none when the line is empty).
        /// Split by hand: `split` with a key path cost a key-path instantiation per start.
        mutating func names() -> [String]? {
            guard let f = field(until: UInt8(ascii: "\n")) else { return nil }
            if f.isEmpty { return [] }
            var out: [String] = []
            var start = f.startIndex
            for i in f.indices where f[i] == UInt8(ascii: ",") {
                guard i > start else { return nil }
                out.append(String(decoding: f[start..<i], as: UTF8.self))
                start = i + 1
            }
            guard start < f.endIndex else { return nil }
            out.append(String(decoding: f[start...], as: UTF8.self))
            return out
        }
    }
}
