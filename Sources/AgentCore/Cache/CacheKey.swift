import Crypto
import AgentSupport
import FoundationEssentials
import Glibc

/// Turns cache ids and scopes into single, safe directory names.
///
/// A cache id is free text (BuildKit uses the target path by default, e.g. `/root/.cache/pip`),
/// so it must never become a path: every byte outside `[A-Za-z0-9_-]` and any `.` are
/// percent-escaped (so `..`, `/` and hidden names cannot appear), and names too long for one
/// path component become a readable prefix plus a SHA-256 of the whole id. The mapping is
/// injective, so two ids never share a directory.
public enum CacheKey {
    /// Longest escaped name kept verbatim (a path component may have 255 bytes).
    static let maxVerbatim = 180

    public static func escape(_ id: String) -> String {
        var out = ""
        for byte in id.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += "%" + hexDigits(byte, width: 2).uppercased()
            }
        }
        if out.isEmpty { out = "%" } // the empty id (never valid, but never a bad name either)
        if out.utf8.count <= maxVerbatim { return out }
        // `~` never appears in a verbatim name, so hashed names cannot collide with them.
        let digest = SHA256.hash(data: Data(id.utf8)).map { hexDigits($0, width: 2) }.joined()
        return String(out.prefix(100)) + "~" + digest
    }

    /// Reverses `escape` for verbatim names; nil for hashed ones (the id is in meta.json).
    public static func unescape(_ name: String) -> String? {
        if name.contains("~") { return nil }
        var bytes: [UInt8] = []
        var it = Array(name.utf8)[...]
        while let b = it.popFirst() {
            if b == UInt8(ascii: "%") {
                guard it.count >= 2, let v = UInt8(String(decoding: it.prefix(2), as: UTF8.self), radix: 16) else { return nil }
                bytes.append(v)
                it.removeFirst(2)
            } else {
                bytes.append(b)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Scopes are names the job author chooses: `[A-Za-z0-9._-]{1,128}`, not `.` or `..`.
    public static func isValidScope(_ scope: String) -> Bool {
        !scope.isEmpty && scope.utf8.count <= 128 && scope != "." && scope != ".."
            && scope.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "_" || $0 == "-") }
    }
}

/// Volume names, as Docker allows them: `[A-Za-z0-9][A-Za-z0-9._-]*` (at most 128).
public enum VolumeName {
    public static func isValid(_ name: String) -> Bool {
        guard let first = name.first, first.isASCII, first.isLetter || first.isNumber, name.utf8.count <= 128 else { return false }
        return name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "_" || $0 == "-") }
    }
}
