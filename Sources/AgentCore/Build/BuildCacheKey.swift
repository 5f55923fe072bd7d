import Crypto
import FoundationEssentials
import Images

/// Builds an instruction's cache key, BuildKit's way: the parent's key, then every input
/// the instruction's result depends on, each field length-prefixed so no two different
/// inputs hash alike. Secrets enter only by id and target, cache mounts by their spec:
/// never a secret's value, never a cache mount's contents.
struct BuildCacheKey {
    private var hasher = SHA256()

    /// A key starting from `parent` (the previous instruction's key, or the base image's).
    init(parent: Images.Digest?, kind: String) {
        add("agent-build-cache-v1")
        add(parent?.description ?? "")
        add(kind)
    }

    /// The key of a `FROM`: the base's resolved manifest digest (or `scratch`), platform.
    static func base(_ manifest: String, platform: String) -> Images.Digest {
        var k = BuildCacheKey(parent: nil, kind: "FROM")
        k.add(manifest)
        k.add(platform)
        return k.finish()
    }

    mutating func add(_ text: String) {
        add(Array(text.utf8))
    }

    mutating func add(_ bytes: [UInt8]) {
        var n = UInt64(bytes.count).bigEndian
        withUnsafeBytes(of: &n) { hasher.update(bufferPointer: $0) }
        hasher.update(data: bytes)
    }

    mutating func add(_ label: String, _ values: [String]) {
        add(label)
        add(String(values.count))
        for v in values { add(v) }
    }

    func finish() -> Images.Digest {
        Images.Digest(Self.hex(hasher.finalize()))!
    }

    static func hex(_ d: SHA256.Digest) -> String {
        let table = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in d { out.append(table[Int(b >> 4)]); out.append(table[Int(b & 15)]) }
        return "sha256:" + String(decoding: out, as: UTF8.self)
    }
}
