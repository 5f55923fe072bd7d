import AgentSupport
import CAgentSandbox
import CArchive
import Crypto
import FoundationEssentials
import Glibc

/// How a layer blob is compressed (`compression=` of BuildKit's outputs).
public enum LayerCompression: String, Sendable, CaseIterable {
    /// `application/vnd.oci.image.layer.v1.tar+gzip`, the default: no name, no timestamp
    /// in the gzip header, so the same tar always gives the same blob.
    case gzip
    /// `application/vnd.oci.image.layer.v1.tar+zstd`.
    case zstd
    /// `application/vnd.oci.image.layer.v1.tar`: the blob is the tar (digest = diff_id).
    case uncompressed

    /// The layer media type of this compression.
    public var mediaType: String {
        switch self {
        case .gzip: "application/vnd.oci.image.layer.v1.tar+gzip"
        case .zstd: "application/vnd.oci.image.layer.v1.tar+zstd"
        case .uncompressed: "application/vnd.oci.image.layer.v1.tar"
        }
    }
}

/// One contiguous range of a user-namespace id map (`/proc/PID/uid_map` line order:
/// container id, host id, count).
public struct IDRange: Sendable, Equatable {
    public var containerID: UInt32
    public var hostID: UInt32
    public var count: UInt32
    public init(containerID: UInt32, hostID: UInt32, count: UInt32) {
        self.containerID = containerID; self.hostID = hostID; self.count = count
    }
}

/// Host-to-container owner mapping for `.directory` sources: the staged files belong to
/// the agent's user on the host and must appear in the layer as the container's ids.
/// A host id outside every range maps to `unmapped` (the overflow id of an unmapped owner:
/// nobody, 65534), never to the host's number.
public struct IDMapping: Sendable, Equatable {
    public var uids: [IDRange]
    public var gids: [IDRange]
    public var unmapped: UInt32 = 65534

    public init(uids: [IDRange], gids: [IDRange]) { self.uids = uids; self.gids = gids }

    /// Every host owner becomes root:root (a COPY without `--chown`).
    public static func allRoot(hostUID: UInt32, hostGID: UInt32) -> IDMapping {
        IDMapping(uids: [IDRange(containerID: 0, hostID: hostUID, count: 1)],
                  gids: [IDRange(containerID: 0, hostID: hostGID, count: 1)])
    }

    /// The container uid of host uid `id`.
    public func containerUID(_ id: UInt32) -> UInt32 { Self.map(id, uids) ?? unmapped }
    /// The container gid of host gid `id`.
    public func containerGID(_ id: UInt32) -> UInt32 { Self.map(id, gids) ?? unmapped }

    static func map(_ id: UInt32, _ ranges: [IDRange]) -> UInt32? {
        for r in ranges where id >= r.hostID && UInt64(id) < UInt64(r.hostID) + UInt64(r.count) {
            return r.containerID + (id - r.hostID)
        }
        return nil
    }
}

/// Where a layer's files come from.
public enum LayerSource: Sendable {
    /// A folder tree read by descriptor (a `COPY` staging folder, an overlay upper folder
    /// readable by the agent). The descriptor stays the caller's (not closed).
    case directory(Int32)
    /// An uncompressed tar read from a descriptor (a pipe from `tar -cf - .` run inside
    /// the container's user namespace); its owners are already the container's. The
    /// descriptor is read to its end and stays the caller's.
    case tarStream(Int32)
}

/// How a layer is written. Bounds are checked while writing; exceeding one fails the
/// layer naming the path, and nothing is stored.
public struct LayerWriteOptions: Sendable {
    public var compression: LayerCompression = .gzip
    /// `SOURCE_DATE_EPOCH`: every entry's mtime is clamped to it (BuildKit's
    /// `rewrite-timestamp`): later times become the epoch, earlier ones stay.
    public var sourceDateEpoch: Int64? = nil
    /// Overlayfs upper-folder whiteouts (0:0 character devices, `*.overlay.opaque=y`
    /// folders) become OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`).
    public var convertOverlayWhiteouts: Bool = false
    /// `.directory` only: host owners to container owners. Nil: owners are written as
    /// they are (the caller already runs in the container's namespace).
    public var idMapping: IDMapping? = nil
    /// At most this many entries in the layer.
    public var maxEntries: Int = 1_000_000
    /// At most this many bytes of file content in the layer (uncompressed).
    public var maxBytes: Int64 = 64 << 30
    /// `.directory` only: at most this deep a tree.
    public var maxDepth: Int = 256
    /// Entry names longer than this (bytes) are refused (PATH_MAX).
    public var maxPathBytes: Int = 4096
    /// gzip/zstd level (nil: the library's default).
    public var compressionLevel: Int? = nil

    public init() {}
}

/// A layer written into the store.
public struct WrittenLayer: Sendable, Equatable {
    /// The blob as a manifest lists it (media type of the compression, digest, size).
    public var descriptor: Descriptor
    /// sha256 of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    public var diffID: Digest
    /// Bytes of the uncompressed tar.
    public var uncompressedSize: Int64
    /// Entries written (whiteouts included).
    public var entries: Int
    /// Nothing changed: no entry at all. The executor marks its history `empty_layer`
    /// and adds no layer (the blob, an empty tar, is still stored).
    public var isEmpty: Bool { entries == 0 }
}

/// Writes deterministic layer tars into the content store: entries sorted by path
/// bytewise, PAX format, numeric owners only, no atime/ctime, mtimes clamped to
/// `SOURCE_DATE_EPOCH`, hardlinks by inode, xattrs kept except overlayfs's own. The blob
/// streams to a temporary file (never held in memory), is fsynced and renamed under its
/// digest; a failure stores nothing.
public struct LayerWriter: Sendable {
    public let store: ContentStore
    public var options: LayerWriteOptions

    public init(store: ContentStore, options: LayerWriteOptions = LayerWriteOptions()) {
        self.store = store
        self.options = options
    }

    /// Writes the layer of `source` and returns its descriptor and diff_id.
    public func write(_ source: LayerSource) throws(ImageError) -> WrittenLayer {
        var entries: [LayerEntry]
        var spool: LayerTarSource?
        switch source {
        case .directory(let fd):
            entries = try LayerDirectorySource(root: fd, options: options).collect()
        case .tarStream(let fd):
            let s = try LayerTarSource(fd: fd, store: store, options: options)
            entries = try s.collect()
            spool = s
        }
        entries = LayerEntries.convertWhiteouts(entries, convert: options.convertOverlayWhiteouts)
        guard entries.count <= options.maxEntries else {
            throw .layer(entries.last?.name ?? "", "the layer has more than \(options.maxEntries) entries")
        }
        try LayerEntries.finish(&entries, epoch: options.sourceDateEpoch)
        let out = try LayerTarOutput(store: store, compression: options.compression, level: options.compressionLevel)
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        for e in entries {
            try out.header(e)
            if e.hardlink == nil, e.size > 0 {
                switch (source, e.data) {
                case (.directory(let root), .file(let path)):
                    try copyFile(root, path, e, out, &buf)
                case (_, .spool(let offset)):
                    try copySpool(spool!.spool, offset, e, out, &buf)
                default:
                    break
                }
            }
            try out.finishEntry(e.name)
        }
        let r = try out.finish()
        return WrittenLayer(descriptor: Descriptor(mediaType: options.compression.mediaType, digest: r.digest, size: r.size),
                            diffID: r.diffID, uncompressedSize: out.tarSize, entries: entries.count)
    }

    /// Streams a staged file's content (exactly the size its entry was collected with: a
    /// file changed since fails the layer rather than writing a tar that lies).
    private func copyFile(_ root: Int32, _ path: [UInt8], _ e: LayerEntry, _ out: LayerTarOutput, _ buf: inout [UInt8]) throws(ImageError) {
        let fd = cPath(path) { agent_resolve_open_in_root_nosymlinks(root, $0, O_RDONLY | O_NOFOLLOW, 0) }
        guard fd >= 0 else { throw .layer(e.name, "cannot be opened: " + String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & Glibc.S_IFMT) == Glibc.S_IFREG, Int64(st.st_size) == e.size else {
            throw .layer(e.name, "changed while the layer was written")
        }
        var left = e.size
        while left > 0 {
            let want = Int(min(Int64(buf.count), left))
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, want) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw .layer(e.name, "changed while the layer was written") }
            try out.data(buf, n, entry: e.name)
            left -= Int64(n)
        }
    }

    private func copySpool(_ spool: Int32, _ offset: Int64, _ e: LayerEntry, _ out: LayerTarOutput, _ buf: inout [UInt8]) throws(ImageError) {
        var done: Int64 = 0
        while done < e.size {
            let want = Int(min(Int64(buf.count), e.size - done))
            let n = buf.withUnsafeMutableBytes { pread(spool, $0.baseAddress, want, off_t(offset + done)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw .store(path: "layer spool", operation: "read", errno: n < 0 ? errno : EIO) }
            try out.data(buf, n, entry: e.name)
            done += Int64(n)
        }
    }
}
