import AgentSupport
import CArchive
import Crypto
import FoundationEssentials
import Glibc

/// A blob of unknown digest being written: a temporary file in the store's `tmp/`, hashed
/// as it is written; `commit` fsyncs it and renames it under its digest (or drops it when
/// the store already has that blob). Never committed, it is removed.
final class StagedBlob {
    let store: ContentStore
    let tempPath: String
    let fd: Int32
    private var hasher = SHA256()
    private(set) var size: Int64 = 0
    private(set) var failure: Int32 = 0
    private var done = false

    init(store: ContentStore) throws(ImageError) {
        self.store = store
        tempPath = store.temporaryPath("layer")
        fd = open(tempPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .store(path: tempPath, operation: "create", errno: errno) }
    }

    deinit {
        close(fd)
        if !done { unlink(tempPath) }
    }

    func write(_ p: UnsafeRawPointer, _ n: Int) -> Bool {
        hasher.update(bufferPointer: UnsafeRawBufferPointer(start: p, count: n))
        size += Int64(n)
        var off = 0
        while off < n {
            let w = Glibc.write(fd, p + off, n - off)
            if w < 0 { if errno == EINTR { continue }; failure = errno; return false }
            off += w
        }
        return true
    }

    func commit() throws(ImageError) -> Digest {
        if failure != 0 { throw .store(path: tempPath, operation: "write", errno: failure) }
        let d = Digest(finalized: hasher)
        guard fsync(fd) == 0 else { throw .store(path: tempPath, operation: "fsync", errno: errno) }
        if store.has(d) { return d }  // the same content is stored already (deinit removes ours)
        guard rename(tempPath, store.blobPath(d)) == 0 else { throw .store(path: store.blobPath(d), operation: "rename", errno: errno) }
        done = true
        syncDirectory(store.root + "/blobs/sha256")
        return d
    }
}

/// The two libarchive writers of a layer: a PAX tar whose bytes are hashed (the diff_id)
/// and passed to a compressor (libarchive's raw format with its gzip or zstd filter;
/// gzip without name or timestamp), whose output goes to the staged blob. Uncompressed,
/// the tar goes straight to the blob.
final class LayerTarOutput {
    let blob: StagedBlob
    private let tar: OpaquePointer
    private var compressor: OpaquePointer?
    private var diffHasher = SHA256()
    private(set) var tarSize: Int64 = 0
    private(set) var failed = false

    init(store: ContentStore, compression: LayerCompression, level: Int?) throws(ImageError) {
        blob = try StagedBlob(store: store)
        guard let t = archive_write_new() else { throw .store(path: "layer", operation: "archive_write_new", errno: ENOMEM) }
        tar = t
        archive_write_set_format_pax_restricted(tar)
        // No charset conversion of names (a file name is bytes; the C locale cannot convert).
        archive_write_set_format_option(tar, "pax", "hdrcharset", "BINARY")
        archive_write_set_bytes_per_block(tar, 10240)
        archive_write_set_bytes_in_last_block(tar, 1)
        if compression != .uncompressed {
            guard let c = archive_write_new() else { throw .store(path: "layer", operation: "archive_write_new", errno: ENOMEM) }
            compressor = c
            archive_write_set_format_raw(c)
            let filter: String
            if compression == .gzip {
                archive_write_add_filter_gzip(c)
                filter = "gzip"
                // "!timestamp": no mtime in the gzip header, so equal tars give equal blobs.
                archive_write_set_filter_option(c, "gzip", "timestamp", nil)
            } else {
                archive_write_add_filter_zstd(c)
                filter = "zstd"
            }
            if let level { archive_write_set_filter_option(c, filter, "compression-level", String(level)) }
            archive_write_set_bytes_per_block(c, 0)
            archive_write_set_bytes_in_last_block(c, 1)
            let ctx = Unmanaged.passUnretained(self).toOpaque()
            guard archive_write_open(c, ctx, nil, { _, ctx, buf, n in
                let me = Unmanaged<LayerTarOutput>.fromOpaque(ctx!).takeUnretainedValue()
                return me.blob.write(buf!, n) ? la_ssize_t(n) : -1
            }, nil) == ARCHIVE_OK else { throw .store(path: "layer", operation: "compressor: " + LayerUnpacker.errorString(c), errno: EIO) }
            let e = archive_entry_new()
            defer { archive_entry_free(e) }
            archive_entry_copy_pathname(e, "layer.tar")
            archive_entry_set_filetype(e, UInt32(Glibc.S_IFREG))
            archive_entry_set_perm(e, 0o644)
            guard archive_write_header(c, e) == ARCHIVE_OK else { throw .store(path: "layer", operation: "compressor: " + LayerUnpacker.errorString(c), errno: EIO) }
        }
        let ctx = Unmanaged.passUnretained(self).toOpaque()
        guard archive_write_open(tar, ctx, nil, { _, ctx, buf, n in
            let me = Unmanaged<LayerTarOutput>.fromOpaque(ctx!).takeUnretainedValue()
            return me.tarBytes(buf!, n) ? la_ssize_t(n) : -1
        }, nil) == ARCHIVE_OK else { throw .store(path: "layer", operation: "tar: " + LayerUnpacker.errorString(tar), errno: EIO) }
    }

    deinit {
        archive_write_free(tar)
        if let compressor { archive_write_free(compressor) }
    }

    private func tarBytes(_ p: UnsafeRawPointer, _ n: Int) -> Bool {
        diffHasher.update(bufferPointer: UnsafeRawBufferPointer(start: p, count: n))
        tarSize += Int64(n)
        guard let c = compressor else { return blob.write(p, n) }
        var off = 0
        while off < n {
            let w = archive_write_data(c, p + off, n - off)
            if w <= 0 { failed = true; return false }
            off += w
        }
        return true
    }

    /// Writes one entry's header; the caller then streams its content with `data`.
    func header(_ entry: LayerEntry) throws(ImageError) {
        guard let e = archive_entry_new() else { throw .store(path: "layer", operation: "archive_entry_new", errno: ENOMEM) }
        defer { archive_entry_free(e) }
        let isDir = entry.type == UInt32(Glibc.S_IFDIR)
        cPath(entry.path + (isDir ? [UInt8(ascii: "/")] : [])) { archive_entry_copy_pathname(e, $0) }
        archive_entry_set_filetype(e, entry.type)
        archive_entry_set_perm(e, mode_t(entry.mode))
        archive_entry_set_uid(e, entry.uid)
        archive_entry_set_gid(e, entry.gid)
        archive_entry_set_mtime(e, time_t(entry.mtime), 0)
        if let link = entry.hardlink {
            cPath(link) { archive_entry_copy_hardlink(e, $0) }
            archive_entry_set_size(e, 0)
        } else {
            archive_entry_set_size(e, entry.type == UInt32(Glibc.S_IFREG) ? entry.size : 0)
        }
        if let s = entry.symlink { cPath(s) { archive_entry_copy_symlink(e, $0) } }
        if entry.type == UInt32(Glibc.S_IFCHR) || entry.type == UInt32(Glibc.S_IFBLK) {
            archive_entry_set_rdevmajor(e, dev_t(entry.rdevMajor))
            archive_entry_set_rdevminor(e, dev_t(entry.rdevMinor))
        }
        for x in entry.xattrs {
            x.value.withUnsafeBytes { v in archive_entry_xattr_add_entry(e, x.name, v.baseAddress, v.count) }
        }
        let r = archive_write_header(tar, e)
        guard r == ARCHIVE_OK || r == ARCHIVE_WARN else { throw writeError(entry.name) }
    }

    /// Appends content to the current entry.
    func data(_ buf: [UInt8], _ n: Int, entry: String) throws(ImageError) {
        let ok = buf.withUnsafeBytes { b in
            var off = 0
            while off < n {
                let w = archive_write_data(tar, b.baseAddress! + off, n - off)
                guard w > 0 else { return false }
                off += w
            }
            return true
        }
        guard ok else { throw writeError(entry) }
    }

    func finishEntry(_ entry: String) throws(ImageError) {
        guard archive_write_finish_entry(tar) == ARCHIVE_OK else { throw writeError(entry) }
    }

    /// Ends the tar and the compressor and commits the blob: (digest, size, diff_id).
    func finish() throws(ImageError) -> (digest: Digest, size: Int64, diffID: Digest) {
        guard archive_write_close(tar) == ARCHIVE_OK, !failed else { throw writeError("") }
        if let c = compressor {
            guard archive_write_close(c) == ARCHIVE_OK else {
                throw .store(path: blob.tempPath, operation: "compress: " + LayerUnpacker.errorString(c), errno: blob.failure != 0 ? blob.failure : EIO)
            }
        }
        let d = try blob.commit()
        return (d, blob.size, Digest(finalized: diffHasher))
    }

    private func writeError(_ entry: String) -> ImageError {
        if blob.failure != 0 { return .store(path: blob.tempPath, operation: "write", errno: blob.failure) }
        return .layer(entry, "cannot be written: " + LayerUnpacker.errorString(tar))
    }
}
