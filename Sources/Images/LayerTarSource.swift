import CArchive
import FoundationEssentials
import Glibc

/// Collects the entries of an uncompressed tar read from a descriptor (a pipe from `tar`
/// inside the container's user namespace). File contents are spooled to an unlinked
/// file in the store's `tmp/` (never held in memory) so the entries can be sorted before
/// they are written. The stream is hostile: names are checked, a hardlink must name an
/// earlier regular file, bounds hold, and a stream that breaks off fails.
final class LayerTarSource {
    let fd: Int32
    let options: LayerWriteOptions
    /// The spool file (unlinked at once: it goes with its descriptor).
    let spool: Int32
    private var spoolSize: Int64 = 0

    init(fd: Int32, store: ContentStore, options: LayerWriteOptions) throws(ImageError) {
        self.fd = fd
        self.options = options
        let path = store.temporaryPath("layer-spool")
        spool = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard spool >= 0 else { throw .store(path: path, operation: "create", errno: errno) }
        unlink(path)
    }

    deinit { close(spool) }

    func collect() throws(ImageError) -> [LayerEntry] {
        guard let a = archive_read_new() else { throw .store(path: "tar stream", operation: "archive_read_new", errno: ENOMEM) }
        defer { archive_read_free(a) }
        archive_read_support_format_tar(a)
        guard archive_read_open_fd(a, fd, 1 << 16) == ARCHIVE_OK else {
            throw .layer("", "the tar stream cannot be read: " + LayerUnpacker.errorString(a))
        }
        var entries: [LayerEntry] = []
        var index: [[UInt8]: Int] = [:]
        var bytes: Int64 = 0
        while true {
            var ep: OpaquePointer?
            let r = archive_read_next_header(a, &ep)
            if r == ARCHIVE_EOF { break }
            guard r == ARCHIVE_OK || r == ARCHIVE_WARN, let e = ep else {
                throw .layer(entries.last?.name ?? "", "the tar stream breaks off or is not a tar after this entry: " + LayerUnpacker.errorString(a))
            }
            let raw: [UInt8] = archive_entry_pathname(e).map { Array(UnsafeBufferPointer(start: UnsafeRawPointer($0).assumingMemoryBound(to: UInt8.self), count: strlen($0))) } ?? []
            let shown = String(decoding: raw.prefix(300), as: UTF8.self)
            guard let path = try LayerEntries.normalise(raw, maxBytes: options.maxPathBytes, display: shown) else {
                archive_read_data_skip(a)
                continue  // "./": the layer's root itself
            }
            guard entries.count < options.maxEntries else { throw .layer(shown, "the layer has more than \(options.maxEntries) entries") }
            var entry = LayerEntry(path: path, type: UInt32(archive_entry_filetype(e)), mode: UInt32(archive_entry_perm(e)) & 0o7777,
                                   uid: archive_entry_uid(e), gid: archive_entry_gid(e), mtime: Int64(archive_entry_mtime(e)))
            entry.xattrs = Self.xattrs(e)
            if let target = archive_entry_hardlink(e) {
                let t = Array(UnsafeBufferPointer(start: UnsafeRawPointer(target).assumingMemoryBound(to: UInt8.self), count: strlen(target)))
                guard let tp = try LayerEntries.normalise(t, maxBytes: options.maxPathBytes, display: shown), let ti = index[tp],
                      entries[ti].type == UInt32(Glibc.S_IFREG) else {
                    throw .layer(shown, "is a hard link to \(jsonish(String(decoding: t, as: UTF8.self))), which is not an earlier file of the stream")
                }
                if entries[ti].linkKey == nil { entries[ti].linkKey = tp }
                entry.type = UInt32(Glibc.S_IFREG)
                entry.linkKey = entries[ti].linkKey
                entry.data = entries[ti].data
                entry.size = entries[ti].size
                archive_read_data_skip(a)
            } else {
                switch entry.type {
                case UInt32(Glibc.S_IFREG):
                    let size = archive_entry_size(e)
                    bytes += size
                    if bytes > options.maxBytes { throw .layer(shown, "the layer holds more than \(options.maxBytes) bytes") }
                    entry.size = size
                    entry.data = .spool(spoolSize)
                    try copy(a, size: size, shown)
                case UInt32(Glibc.S_IFLNK):
                    entry.symlink = archive_entry_symlink(e).map { Array(UnsafeBufferPointer(start: UnsafeRawPointer($0).assumingMemoryBound(to: UInt8.self), count: strlen($0))) } ?? []
                case UInt32(Glibc.S_IFCHR), UInt32(Glibc.S_IFBLK):
                    entry.rdevMajor = UInt32(truncatingIfNeeded: archive_entry_rdevmajor(e))
                    entry.rdevMinor = UInt32(truncatingIfNeeded: archive_entry_rdevminor(e))
                case UInt32(Glibc.S_IFDIR), UInt32(Glibc.S_IFIFO):
                    break
                default:
                    archive_read_data_skip(a)
                    continue
                }
            }
            if index[path] != nil { throw .layer(shown, "is listed twice in the tar stream") }
            index[path] = entries.count
            entries.append(entry)
        }
        return entries
    }

    /// Appends the entry's `size` bytes to the spool; fewer is a stream that lies.
    private func copy(_ a: OpaquePointer, size: Int64, _ shown: String) throws(ImageError) {
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        var done: Int64 = 0
        while true {
            let n = buf.withUnsafeMutableBytes { archive_read_data(a, $0.baseAddress, $0.count) }
            if n == 0 { break }
            guard n > 0 else { throw .layer(shown, "the tar stream breaks off in this file: " + LayerUnpacker.errorString(a)) }
            let ok = buf.withUnsafeBytes { b in
                var off = 0
                while off < n {
                    let w = pwrite(spool, b.baseAddress! + off, n - off, off_t(spoolSize + Int64(off)))
                    if w < 0 { if errno == EINTR { continue }; return false }
                    off += w
                }
                return true
            }
            guard ok else { throw .store(path: "layer spool", operation: "write", errno: errno) }
            spoolSize += Int64(n)
            done += Int64(n)
        }
        guard done == size else { throw .layer(shown, "the tar stream holds \(done) of its \(size) bytes") }
    }

    static func xattrs(_ e: OpaquePointer) -> [(name: String, value: [UInt8])] {
        var out: [(name: String, value: [UInt8])] = []
        guard archive_entry_xattr_reset(e) > 0 else { return out }
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK, let name {
            let v = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
            out.append((String(cString: name), v))
        }
        return out.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
    }
}
