import CAgentSandbox
import FoundationEssentials
import Glibc

/// Collects the entries of a folder tree read by descriptor: an iterative walk (no
/// recursion, bounded depth and entries) where every folder is opened beneath the root
/// with RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS, so a symlink in the tree is recorded as a
/// link and never followed, and a tree changed under the walk cannot lead it elsewhere.
struct LayerDirectorySource {
    let root: Int32
    let options: LayerWriteOptions

    func collect() throws(ImageError) -> [LayerEntry] {
        var entries: [LayerEntry] = []
        var bytes: Int64 = 0
        var seenInodes = Set<[UInt8]>()
        // Folders still to read: their path beneath the root ([] is the root) and depth.
        var pending: [([UInt8], Int)] = [([], 0)]
        while let (dir, depth) = pending.popLast() {
            let display = dir.isEmpty ? "." : String(decoding: dir, as: UTF8.self)
            let fd = dir.isEmpty ? openat(root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                : cPath(dir) { agent_resolve_open_in_root_nosymlinks(root, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0) }
            guard fd >= 0 else { throw .layer(display, "cannot be opened: " + String(cString: strerror(errno))) }
            defer { close(fd) }
            for name in try names(fd, display) {
                let path = dir.isEmpty ? name : dir + [UInt8(ascii: "/")] + name
                let shown = String(decoding: path, as: UTF8.self)
                if path.count > options.maxPathBytes { throw .layer(String(shown.prefix(200)) + "...", "its name is longer than \(options.maxPathBytes) bytes") }
                var st = stat()
                guard cPath(name, { fstatat(fd, $0, &st, AT_SYMLINK_NOFOLLOW) }) == 0 else {
                    throw .layer(shown, "cannot be read: " + String(cString: strerror(errno)))
                }
                guard entries.count < options.maxEntries else { throw .layer(shown, "the layer has more than \(options.maxEntries) entries") }
                var e = LayerEntry(path: path, type: st.st_mode & Glibc.S_IFMT, mode: st.st_mode & 0o7777,
                                   uid: Int64(options.idMapping?.containerUID(st.st_uid) ?? st.st_uid),
                                   gid: Int64(options.idMapping?.containerGID(st.st_gid) ?? st.st_gid),
                                   mtime: Int64(st.st_mtim.tv_sec))
                switch e.type {
                case Glibc.S_IFREG:
                    e.size = Int64(st.st_size)
                    e.data = .file(path)
                    if st.st_nlink > 1 {
                        let key = Array("\(st.st_dev):\(st.st_ino)".utf8)
                        e.linkKey = key
                        if !seenInodes.insert(key).inserted { break }
                    }
                    bytes += e.size
                    if bytes > options.maxBytes { throw .layer(shown, "the layer holds more than \(options.maxBytes) bytes") }
                case Glibc.S_IFDIR:
                    guard depth + 1 <= options.maxDepth else { throw .layer(shown, "is deeper than \(options.maxDepth) folders") }
                    pending.append((path, depth + 1))
                case Glibc.S_IFLNK:
                    e.symlink = try linkText(fd, name, shown)
                case Glibc.S_IFCHR, Glibc.S_IFBLK:
                    // glibc's major()/minor() (macros Swift does not import).
                    let d = UInt64(st.st_rdev)
                    e.rdevMajor = UInt32(truncatingIfNeeded: ((d >> 8) & 0xfff) | ((d >> 32) & ~0xfff))
                    e.rdevMinor = UInt32(truncatingIfNeeded: (d & 0xff) | ((d >> 12) & ~0xff))
                case Glibc.S_IFIFO:
                    break
                default:
                    continue  // sockets: a tar cannot hold them (tar skips them too)
                }
                if e.type == Glibc.S_IFREG || e.type == Glibc.S_IFDIR { e.xattrs = try xattrs(fd, name, shown) }
                entries.append(e)
            }
        }
        return entries
    }

    /// The folder's entry names (without `.` and `..`).
    private func names(_ fd: Int32, _ display: String) throws(ImageError) -> [[UInt8]] {
        let copy = dup(fd)
        guard copy >= 0, let d = fdopendir(copy) else {
            if copy >= 0 { close(copy) }
            throw .layer(display, "cannot be listed: " + String(cString: strerror(errno)))
        }
        defer { closedir(d) }
        var out: [[UInt8]] = []
        while let ent = readdir(d) {
            let name = withUnsafeBytes(of: ent.pointee.d_name) { raw in Array(raw.prefix { $0 != 0 }) }
            if name == [0x2e] || name == [0x2e, 0x2e] { continue }
            out.append(name)
            guard out.count <= options.maxEntries else { throw .layer(display, "the layer has more than \(options.maxEntries) entries") }
        }
        return out
    }

    private func linkText(_ fd: Int32, _ name: [UInt8], _ shown: String) throws(ImageError) -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: options.maxPathBytes + 1)
        let n = cPath(name) { p in buf.withUnsafeMutableBytes { readlinkat(fd, p, $0.baseAddress!.assumingMemoryBound(to: CChar.self), $0.count) } }
        guard n >= 0 else { throw .layer(shown, "cannot be read: " + String(cString: strerror(errno))) }
        guard n <= options.maxPathBytes else { throw .layer(shown, "is a symlink longer than \(options.maxPathBytes) bytes") }
        return Array(buf[..<n])
    }

    /// The entry's xattrs, sorted by name (read by `/proc/self/fd/DIR/NAME`, no final symlink).
    private func xattrs(_ fd: Int32, _ name: [UInt8], _ shown: String) throws(ImageError) -> [(name: String, value: [UInt8])] {
        let path = Array("/proc/self/fd/\(fd)/".utf8) + name
        // The size first: most files have no xattr, and then nothing is allocated.
        let size = cPath(path) { agent_resolve_llistxattr($0, nil, 0) }
        if size <= 0 {
            if size == 0 || errno == ENOTSUP || errno == ENODATA { return [] }
            throw .layer(shown, "its xattrs cannot be read: " + String(cString: strerror(errno)))
        }
        var list = [UInt8](repeating: 0, count: 64 << 10)
        let n = cPath(path) { p in list.withUnsafeMutableBytes { agent_resolve_llistxattr(p, $0.baseAddress!.assumingMemoryBound(to: CChar.self), $0.count) } }
        if n < 0 { throw .layer(shown, "its xattrs cannot be read: " + String(cString: strerror(errno))) }
        var out: [(name: String, value: [UInt8])] = []
        for raw in list[..<n].split(separator: 0) {
            let key = String(decoding: raw, as: UTF8.self)
            var value = [UInt8](repeating: 0, count: 64 << 10)
            let m = cPath(path) { p in
                key.withCString { k in value.withUnsafeMutableBytes { agent_resolve_lgetxattr(p, k, $0.baseAddress, $0.count) } }
            }
            // A name the agent may not read (trusted.* of another namespace) is left out.
            if m < 0 { if errno == ENODATA || errno == EPERM || errno == EACCES { continue }; throw .layer(shown, "xattr \(key) cannot be read: " + String(cString: strerror(errno))) }
            out.append((key, Array(value[..<m])))
        }
        return out.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
    }
}

/// Calls `body` with `bytes` as a NUL-terminated C string.
func cPath<T>(_ bytes: [UInt8], _ body: (UnsafePointer<CChar>) -> T) -> T {
    (bytes + [0]).withUnsafeBufferPointer { b in b.baseAddress!.withMemoryRebound(to: CChar.self, capacity: b.count) { body($0) } }
}
