import AgentSupport
import CAgentSandbox
import CArchive
import Crypto
import FoundationEssentials
import Glibc
import Sandbox

/// Unpacks one layer (tar, gzip or zstd) into an empty snapshot folder, treating the layer
/// as hostile: every entry is created relative to a descriptor of its parent folder, and
/// that parent is reached component by component with openat2(RESOLVE_IN_ROOT |
/// RESOLVE_NO_SYMLINKS) from the snapshot's root, so neither `..`, an absolute path nor a
/// symlink (planted earlier in the same layer) can lead a write anywhere else. Any such
/// entry fails the whole layer, naming it.
///
/// Whiteouts become what overlayfs understands without privileges: `.wh.NAME` a 0:0
/// character device (which the kernel lets anyone create since 5.8), `.wh..wh..opq` the
/// xattr `user.overlay.opaque=y` on its folder (the container's overlay is mounted with
/// `userxattr`). Device nodes are skipped with a warning. Files belong to the agent;
/// folders get owner rwx on top of their mode, so the agent can fill and later remove them.
struct LayerUnpacker {
    let image: String
    let layer: Digest
    /// Unpacking onto the layers below in one folder (`type=local`, a root filesystem
    /// export) rather than into a snapshot: a whiteout removes what it names, an opaque
    /// marker what its folder held from below, and neither leaves a trace.
    var applyWhiteouts = false
    /// Paths this layer has written (apply mode: what an opaque marker keeps).
    private let written = WrittenPaths()
    final class WrittenPaths: @unchecked Sendable { var set = Set<String>() }

    /// Subordinate mode: the tar's owners are recorded here (and applied by the caller,
    /// `LayerOwners.apply`) instead of in `user.rootlesscontainers`, except those outside
    /// the ranges. Nil: single mode, every owner goes to the xattr.
    let owners: LayerOwners?

    init(image: String, layer: Digest, applyWhiteouts: Bool = false, owners: OwnerRanges? = nil) {
        self.image = image; self.layer = layer; self.applyWhiteouts = applyWhiteouts
        self.owners = owners.map { LayerOwners(ranges: $0, image: image, layer: layer) }
    }

    /// Layers are uncompressed, gzip or zstd tars. Only libarchive's built-in decoders for
    /// those: `filter_all` would also run external programs (lrzip, lzop, ...) on a hostile
    /// layer that names their formats.
    static func supportLayerFilters(_ a: OpaquePointer) {
        archive_read_support_filter_gzip(a)
        archive_read_support_filter_zstd(a)
    }

    /// The SHA-256 of the uncompressed stream (the layer's diff_id).
    static func diffID(ofBlob path: String, image: String, layer: Digest) throws(ImageError) -> Digest {
        guard let a = archive_read_new() else { throw .store(path: path, operation: "archive_read_new", errno: ENOMEM) }
        defer { archive_read_free(a) }
        Self.supportLayerFilters(a)
        archive_read_support_format_raw(a)
        var entry: OpaquePointer?
        guard archive_read_open_filename(a, path, 1 << 16) == ARCHIVE_OK, archive_read_next_header(a, &entry) == ARCHIVE_OK else {
            throw .hostileLayer(image: image, layer: layer, entry: "", problem: "cannot be read: " + errorString(a))
        }
        var h = SHA256()
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buf.withUnsafeMutableBytes { archive_read_data(a, $0.baseAddress, $0.count) }
            if n == 0 { break }
            guard n > 0 else { throw .hostileLayer(image: image, layer: layer, entry: "", problem: "cannot be read: " + errorString(a)) }
            buf.withUnsafeBytes { h.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
        return Digest(finalized: h)
    }

    /// Unpacks blob `path` into folder `dir` (empty, on the store's filesystem). Returns warnings.
    func unpack(blob path: String, into dir: String) throws(ImageError) -> [String] {
        let root = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)
        guard root >= 0 else { throw .store(path: dir, operation: "open", errno: errno) }
        defer { close(root) }
        return try unpack(blob: path, root: root)
    }

    /// Unpacks blob `path` beneath the folder descriptor `root`. Returns warnings.
    func unpack(blob path: String, root: Int32) throws(ImageError) -> [String] {
        guard let a = archive_read_new() else { throw .store(path: path, operation: "archive_read_new", errno: ENOMEM) }
        defer { archive_read_free(a) }
        Self.supportLayerFilters(a)
        archive_read_support_format_tar(a)
        guard archive_read_open_filename(a, path, 1 << 16) == ARCHIVE_OK else {
            throw hostile("", "cannot be read: " + Self.errorString(a))
        }
        return try entries(a, root)
    }

    /// Unpacks blob `path` into folder `dir` and checks its diff_id in the same pass: the
    /// blob is decompressed once (a raw reader), each chunk hashed on its way into the tar
    /// reader. Throws `diffIDMismatch` after the unpack when the stream is not the layer its
    /// config claims; the caller unpacks into a temporary folder and renames it only on
    /// success, so no snapshot is ever made of a wrong layer.
    func unpackVerifying(blob path: String, into dir: String, diffID expected: Digest) throws(ImageError) -> [String] {
        let root = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)
        guard root >= 0 else { throw .store(path: dir, operation: "open", errno: errno) }
        defer { close(root) }
        guard let raw = archive_read_new() else { throw .store(path: path, operation: "archive_read_new", errno: ENOMEM) }
        defer { archive_read_free(raw) }
        Self.supportLayerFilters(raw)
        archive_read_support_format_raw(raw)
        var rawEntry: OpaquePointer?
        guard archive_read_open_filename(raw, path, 1 << 16) == ARCHIVE_OK,
              archive_read_next_header(raw, &rawEntry) == ARCHIVE_OK else {
            throw hostile("", "cannot be read: " + Self.errorString(raw))
        }
        let feed = HashingFeed(raw: raw)
        guard let a = archive_read_new() else { throw .store(path: path, operation: "archive_read_new", errno: ENOMEM) }
        defer { archive_read_free(a) }
        archive_read_support_format_tar(a)
        let opened = withExtendedLifetime(feed) {
            archive_read_open(a, Unmanaged.passUnretained(feed).toOpaque(), nil, { _, ctx, buffer in
                let f = Unmanaged<HashingFeed>.fromOpaque(ctx!).takeUnretainedValue()
                return f.next(buffer)
            }, nil)
        }
        guard opened == ARCHIVE_OK else { throw hostile("", "is not a readable tar: " + Self.errorString(a)) }
        let warnings = try withExtendedLifetime(feed) { () throws(ImageError) -> [String] in try entries(a, root) }
        // The tar's end-of-archive blocks and any padding after them belong to the stream too.
        feed.drain()
        if feed.failed { throw hostile("", "cannot be read: " + Self.errorString(raw)) }
        let actual = Digest(finalized: feed.hasher)
        guard actual == expected else { throw .diffIDMismatch(image: image, layer: layer, expected: expected, actual: actual) }
        return warnings
    }

    /// Every entry of tar reader `a`, unpacked beneath `root`. Returns warnings.
    private func entries(_ a: OpaquePointer, _ root: Int32) throws(ImageError) -> [String] {
        var warnings: [String] = []
        while true {
            var entryPointer: OpaquePointer?
            let r = archive_read_next_header(a, &entryPointer)
            if r == ARCHIVE_EOF { break }
            guard r == ARCHIVE_OK || r == ARCHIVE_WARN, let e = entryPointer else {
                throw hostile("", "is not a readable tar: " + Self.errorString(a))
            }
            let name = archive_entry_pathname(e).map { String(cString: $0) } ?? ""
            if let w = try entry(a, e, name, root) { warnings.append(w) }
        }
        return warnings
    }

    private func hostile(_ entry: String, _ problem: String) -> ImageError {
        .hostileLayer(image: image, layer: layer, entry: entry, problem: problem)
    }

    /// The path's components: leading `/` and `./` dropped; `..` anywhere is refused.
    func components(_ path: String, entry: String) throws(ImageError) -> [String] {
        let parts = path.split(separator: "/").map(String.init).filter { $0 != "." }
        if parts.contains("..") { throw hostile(entry, "its path leads out of the layer (..)") }
        return parts
    }

    /// A descriptor (O_PATH) of folder `parts` beneath `root`, made if missing; never
    /// through a symlink.
    func folder(_ parts: ArraySlice<String>, _ root: Int32, entry: String, create: Bool) throws(ImageError) -> Int32 {
        var cur = dup(root)
        for p in parts {
            var fd = agent_resolve_open_in_root_nosymlinks(cur, p, O_PATH | O_DIRECTORY, 0)
            if fd < 0 && errno == ENOENT && create {
                if mkdirat(cur, p, 0o755) != 0 && errno != EEXIST { let e = errno; close(cur); throw errnoError(entry, "mkdir", e) }
                fd = agent_resolve_open_in_root_nosymlinks(cur, p, O_PATH | O_DIRECTORY, 0)
            }
            let e = errno
            close(cur)
            guard fd >= 0 else {
                if e == ELOOP { throw hostile(entry, "its path passes through a symlink (\(p))") }
                if e == ENOTDIR { throw hostile(entry, "its path passes through something that is not a folder (\(p))") }
                throw errnoError(entry, "open", e)
            }
            cur = fd
        }
        return cur
    }

    private func errnoError(_ entry: String, _ op: String, _ e: Int32) -> ImageError {
        hostile(entry, "\(op) failed: \(String(cString: strerror(e)))")
    }

    /// Removes whatever is at `name` (a later entry replaces an earlier one); folders stay.
    /// `full`: its path in the layer, whose recorded owner (and those beneath) goes too.
    private func clear(_ parent: Int32, _ name: String, keepFolder: Bool, full: String) {
        var st = stat()
        guard fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return }
        if (st.st_mode & S_IFMT) == Glibc.S_IFDIR {
            if !keepFolder {
                try? FileManager.default.removeItem(atPath: "/proc/self/fd/\(parent)/\(name)")
                owners?.forget(full, below: true)
            }
        } else {
            unlinkat(parent, name, 0)
            owners?.forget(full, below: false)
        }
    }

    private func entry(_ a: OpaquePointer, _ e: OpaquePointer, _ raw: String, _ root: Int32) throws(ImageError) -> String? {
        var parts = try components(raw, entry: raw)
        guard let name = parts.popLast() else { return nil }  // "./": the snapshot's root itself
        let parent = try folder(parts[...], root, entry: raw, create: true)
        defer { close(parent) }
        if name.hasPrefix(".wh.") {
            try whiteout(String(name.dropFirst(4)), parent, raw, folder: parts.joined(separator: "/"))
            return nil
        }
        let full = (parts + [name]).joined(separator: "/")
        if applyWhiteouts { written.set.insert(full) }
        let mode = UInt32(archive_entry_perm(e)) & 0o7777
        if let link = archive_entry_hardlink(e) {
            let target = String(cString: link)
            var tparts = try components(target, entry: raw)
            guard let tname = tparts.popLast() else { throw hostile(raw, "is a hard link to the layer's root") }
            let notHere = hostile(raw, "is a hard link to \(jsonish(target)), which is not a file of this layer")
            guard let tparent = try? folder(tparts[...], root, entry: raw, create: false) else { throw notHere }
            defer { close(tparent) }
            // A link to a folder or to a symlink is refused too (linkat never follows one).
            var st = stat()
            guard fstatat(tparent, tname, &st, AT_SYMLINK_NOFOLLOW) == 0, (st.st_mode & Glibc.S_IFMT) == Glibc.S_IFREG else { throw notHere }
            clear(parent, name, keepFolder: false, full: full)
            guard linkat(tparent, tname, parent, name, 0) == 0 else { throw notHere }
            return nil
        }
        let type = UInt32(archive_entry_filetype(e))
        var owner = Self.rootlessOwner(uid: archive_entry_uid(e), gid: archive_entry_gid(e))
        // Subordinate mode: the owner is applied later, the xattr only when it cannot be.
        let recorded = owners != nil && [UInt32(Glibc.S_IFDIR), UInt32(Glibc.S_IFREG), UInt32(Glibc.S_IFLNK), UInt32(Glibc.S_IFIFO)].contains(type)
        if recorded, owners!.canApply(uid: archive_entry_uid(e), gid: archive_entry_gid(e)) { owner = nil }
        switch type {
        case UInt32(Glibc.S_IFDIR):
            clear(parent, name, keepFolder: true, full: full)
            if mkdirat(parent, name, 0o700) != 0 && errno != EEXIST { throw errnoError(raw, "mkdir", errno) }
            guard fchmodat(parent, name, mode | 0o700, 0) == 0 else { throw errnoError(raw, "chmod", errno) }
            if let owner {
                let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard fd >= 0 else { throw errnoError(raw, "open", errno) }
                defer { close(fd) }
                try record(owner, fd, raw)
            }
        case UInt32(Glibc.S_IFREG):
            clear(parent, name, keepFolder: false, full: full)
            let fd = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw errnoError(raw, "create", errno) }
            defer { close(fd) }
            try copyData(a, fd, raw)
            // A sparse file's trailing hole has no data block: the size comes from the header.
            guard ftruncate(fd, off_t(archive_entry_size(e))) == 0 else { throw errnoError(raw, "truncate", errno) }
            // The xattr first: a user.* xattr needs write permission, which a mode like 0400 takes away.
            if let owner { try record(owner, fd, raw) }
            guard fchmod(fd, mode) == 0 else { throw errnoError(raw, "chmod", errno) }
        case UInt32(Glibc.S_IFLNK):
            clear(parent, name, keepFolder: false, full: full)
            // The target is only text here; it is resolved inside the container, never by the agent.
            let target = archive_entry_symlink(e).map { String(cString: $0) } ?? ""
            guard symlinkat(target, parent, name) == 0 else { throw errnoError(raw, "symlink", errno) }
        case UInt32(Glibc.S_IFIFO):
            clear(parent, name, keepFolder: false, full: full)
            guard mkfifoat(parent, name, mode) == 0 else { throw errnoError(raw, "mkfifo", errno) }
        case UInt32(Glibc.S_IFCHR), UInt32(Glibc.S_IFBLK):
            return "\(image): layer \(layer): device node \(jsonish(raw)) skipped (cannot be created without privileges)"
        default:
            return "\(image): layer \(layer): \(jsonish(raw)) skipped (unsupported file type)"
        }
        // After the entry was made (making it forgot what it replaced).
        if recorded, let owners {
            let cap = type == UInt32(Glibc.S_IFREG) ? LayerTarSource.xattrs(e).first { $0.name == "security.capability" }?.value ?? [] : []
            try owners.record(path: full, uid: archive_entry_uid(e), gid: archive_entry_gid(e), mode: mode, type: type, capability: cap)
        }
        return nil
    }

    /// The layer's owner of an entry in the `user.rootlesscontainers` xattr (the protobuf
    /// `Resource{uint32 uid = 1; uint32 gid = 2}` that umoci and rootless tools read), or
    /// nil for root:root, which is what every file already looks like inside. Files and
    /// folders only: symlinks cannot carry user xattrs.
    static func rootlessOwner(uid: Int64, gid: Int64) -> [UInt8]? {
        guard uid != 0 || gid != 0, (0...Int64(UInt32.max)).contains(uid), (0...Int64(UInt32.max)).contains(gid) else { return nil }
        func varint(_ v: Int64) -> [UInt8] {
            var v = UInt64(v), out: [UInt8] = []
            repeat { out.append(UInt8(v & 0x7f) | (v > 0x7f ? 0x80 : 0)); v >>= 7 } while v > 0
            return out
        }
        return (uid != 0 ? [0x08] + varint(uid) : []) + (gid != 0 ? [0x10] + varint(gid) : [])
    }

    private func record(_ owner: [UInt8], _ fd: Int32, _ raw: String) throws(ImageError) {
        let rc = owner.withUnsafeBytes { agent_resolve_fsetxattr(fd, "user.rootlesscontainers", $0.baseAddress!.assumingMemoryBound(to: CChar.self), owner.count) }
        guard rc == 0 else { throw errnoError(raw, "setxattr user.rootlesscontainers", errno) }
    }

    /// `.wh.NAME` hides NAME of the layers below; `.wh..wh..opq` hides everything below its folder.
    private func whiteout(_ target: String, _ parent: Int32, _ raw: String, folder: String) throws(ImageError) {
        if target == ".wh..opq" && applyWhiteouts {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd/\(parent)")) ?? []
            for n in names where !written.set.contains(folder.isEmpty ? n : folder + "/" + n) {
                clear(parent, n, keepFolder: false, full: folder.isEmpty ? n : folder + "/" + n)
            }
            return
        }
        if target == ".wh..opq" {
            let fd = openat(parent, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else { throw errnoError(raw, "open", errno) }
            defer { close(fd) }
            guard agent_resolve_fsetxattr(fd, "user.overlay.opaque", "y", 1) == 0 else { throw errnoError(raw, "setxattr", errno) }
            return
        }
        guard !target.isEmpty, target != ".", target != "..", !target.contains("/") else {
            throw hostile(raw, "is a whiteout of \(jsonish(target)), which names no file of the folder")
        }
        clear(parent, target, keepFolder: false, full: folder.isEmpty ? target : folder + "/" + target)
        if applyWhiteouts { return }
        // makedev(0, 0): overlayfs's whiteout.
        guard mknodat(parent, target, Glibc.S_IFCHR | 0o000, 0) == 0 else { throw errnoError(raw, "mknod whiteout", errno) }
    }

    private func copyData(_ a: OpaquePointer, _ fd: Int32, _ raw: String) throws(ImageError) {
        while true {
            var buf: UnsafeRawPointer?
            var size = 0
            var offset: Int64 = 0
            let r = archive_read_data_block(a, &buf, &size, &offset)
            if r == ARCHIVE_EOF { return }
            guard r == ARCHIVE_OK || r == ARCHIVE_WARN else { throw hostile(raw, "cannot be read: " + Self.errorString(a)) }
            var done = 0
            while done < size {
                let n = pwrite(fd, buf! + done, size - done, off_t(offset) + off_t(done))
                if n < 0 { if errno == EINTR { continue }; throw errnoError(raw, "write", errno) }
                done += n
            }
        }
    }

    static func errorString(_ a: OpaquePointer) -> String {
        archive_error_string(a).map { String(cString: $0) } ?? "unknown error"
    }
}

/// The uncompressed stream of a layer blob, handed to a tar reader chunk by chunk and
/// hashed on the way (its SHA-256 is the layer's diff_id).
final class HashingFeed {
    let raw: OpaquePointer
    var hasher = SHA256()
    var failed = false
    private var buffer = [UInt8](repeating: 0, count: 1 << 16)

    init(raw: OpaquePointer) { self.raw = raw }

    /// The next chunk for libarchive's read callback: its length, 0 at the end, -1 on error.
    func next(_ out: UnsafeMutablePointer<UnsafeRawPointer?>?) -> Int {
        let n = buffer.withUnsafeMutableBytes { archive_read_data(raw, $0.baseAddress, $0.count) }
        if n < 0 { failed = true; return -1 }
        buffer.withUnsafeBytes { b in
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: b[0..<n]))
            out?.pointee = b.baseAddress
        }
        return n
    }

    /// Hashes what the tar reader did not ask for.
    func drain() {
        while true {
            let n = buffer.withUnsafeMutableBytes { archive_read_data(raw, $0.baseAddress, $0.count) }
            if n < 0 { failed = true; return }
            if n == 0 { return }
            buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
    }
}
