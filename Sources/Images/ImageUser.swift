import CAgentSandbox
import FoundationEssentials
import Glibc

/// The image config's `User` turned into the ids a step runs as when it names no user
/// (Docker's rules): `uid`, `uid:gid`, `name`, `name:group`, `uid:group`, `name:gid`.
/// Names are looked up in the *image's* `/etc/passwd` and `/etc/group`, never the host's:
/// the image decides who `builder` is. A lone user takes its primary group from passwd,
/// or 0 when passwd has no such uid (as Docker and runc do).
public enum ImageUser {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var image: String
        public var user: String
        public var problem: String
        public var description: String { "image \(image): User \"\(user)\": \(problem)" }
    }

    /// (uid, gid) for `image`'s User, or nil when it has none (steps then run as 0:0).
    public static func resolve(_ image: PreparedImage) throws(Failure) -> (uid: UInt32, gid: UInt32)? {
        guard let user = image.config.user else { return nil }
        return try resolve(user, layers: image.layers, image: image.reference)
    }

    /// `layers`: the snapshot folders, top first (as overlayfs stacks them).
    public static func resolve(_ user: String, layers: [String], image: String) throws(Failure) -> (uid: UInt32, gid: UInt32) {
        func fail(_ p: String) -> Failure { Failure(image: image, user: user, problem: p) }
        let parts = user.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let name = parts[0], group = parts.count > 1 ? parts[1] : nil
        guard !name.isEmpty, group.map({ !$0.isEmpty }) ?? true else { throw fail("not a user: write uid, uid:gid, name or name:group") }
        // Read only when needed: a numeric uid:gid never touches the snapshots.
        var passwd: [[String]]?
        func passwdEntries() -> [[String]] {
            if passwd == nil { passwd = entries(read("etc/passwd", layers: layers)) }
            return passwd!
        }
        let uid: UInt32
        var primaryGID: UInt32?
        if let n = numericID(name) {
            uid = n
            if group == nil { primaryGID = passwdEntries().first { $0.count > 3 && numericID($0[2]) == n }.flatMap { numericID($0[3]) } }
        } else {
            guard let e = passwdEntries().first(where: { $0.count > 3 && $0[0] == name }),
                  let u = numericID(e[2]), let g = numericID(e[3]) else {
                throw fail("no such user in the image's /etc/passwd")
            }
            uid = u; primaryGID = g
        }
        guard let group else { return (uid, primaryGID ?? 0) }
        if let g = numericID(group) { return (uid, g) }
        guard let e = entries(read("etc/group", layers: layers)).first(where: { $0.count > 2 && $0[0] == group }),
              let g = numericID(e[2]) else {
            throw fail("no such group \"\(group)\" in the image's /etc/group")
        }
        return (uid, g)
    }

    /// A decimal id the kernel accepts: (uid_t)-1 means "no change" and is refused.
    static func numericID(_ s: String) -> UInt32? {
        guard !s.isEmpty, s.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let v = UInt32(s), v != UInt32.max else { return nil }
        return v
    }

    /// `name:x:...` lines split on `:`; comments and blank lines dropped.
    static func entries(_ bytes: [UInt8]?) -> [[String]] {
        guard let bytes else { return [] }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap { line in
            line.hasPrefix("#") ? nil : line.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        }
    }

    /// The file as the step would see it: the topmost snapshot that has `path` decides.
    /// Each snapshot is opened as its own root (openat2 RESOLVE_IN_ROOT): a symlink such as
    /// `etc/passwd -> /host/etc/passwd` or `../../..` resolves inside the snapshot, never on
    /// the host. A whiteout (a character device) hides the lower layers' file. An opaque
    /// `etc` in an upper layer is not looked at (it would need the xattr read): a layer that
    /// replaces all of `etc` without a passwd is the only case where a lower one is used.
    /// At most 1 MiB is read: a passwd file is never that large, a hostile one could be.
    static func read(_ path: String, layers: [String]) -> [UInt8]? {
        for layer in layers {
            let root = open(layer, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard root >= 0 else { continue }
            defer { close(root) }
            let fd = agent_resolve_open_in_root(root, path, O_RDONLY | O_NONBLOCK)
            if fd < 0 {
                if errno == ENOENT || errno == ENOTDIR { continue }
                return nil  // a FIFO, a device (whiteout: ENXIO), a loop: there is no passwd
            }
            defer { close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
            var out: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 65536)
            while out.count < 1 << 20 {
                let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { break }
                out += buf[..<n]
            }
            return out
        }
        return nil
    }
}
