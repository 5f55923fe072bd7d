import Crypto
import FoundationEssentials

/// A content digest, `sha256:` and 64 lowercase hex digits (the only algorithm accepted:
/// the store's file names are built from it, so it is validated strictly).
public struct Digest: Sendable, Equatable, Hashable, Comparable, CustomStringConvertible {
    public let hex: String

    public init?(_ text: String) {
        guard let h = text.dropPrefix("sha256:"), h.utf8.count == 64,
              h.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else { return nil }
        hex = h
    }

    /// The digest of `bytes`.
    public init(of bytes: some Sequence<UInt8>) {
        var h = SHA256()
        h.update(data: Array(bytes))
        self.init(finalized: h)
    }

    init(finalized h: SHA256) {
        hex = h.finalize().map { byte in
            let s = String(byte, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined()
    }

    public var description: String { "sha256:" + hex }
    /// The first 12 hex digits, as `docker images` shows them.
    public var short: String { String(hex.prefix(12)) }

    public static func < (a: Digest, b: Digest) -> Bool { a.hex < b.hex }

    /// The ChainIDs of a layer stack (OCI image spec, config.md "Layer ChainID"):
    /// ChainID(L0) = DiffID(L0), ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).
    /// A snapshot keyed by it holds one layer's files, on top of exactly that stack.
    public static func chainIDs(_ diffIDs: [Digest]) -> [Digest] {
        var out: [Digest] = []
        for d in diffIDs {
            if let last = out.last {
                out.append(Digest(of: Array((last.description + " " + d.description).utf8)))
            } else {
                out.append(d)
            }
        }
        return out
    }
}
