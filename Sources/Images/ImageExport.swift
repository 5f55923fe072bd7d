import AgentSupport
import CArchive
import FoundationEssentials
import Glibc

/// Where `ImageStore.export` writes an image (the `--output` types of a build and the
/// destinations of `agent image export`).
public enum ExportDestination: Sendable, Equatable {
    /// An OCI image layout folder (`oci:DIR[:TAG]`), made if missing; blobs are added and
    /// `index.json` keeps the other images it names (one with the same name is replaced).
    case ociLayout(path: String)
    /// A tar of an OCI image layout (`oci-archive:FILE`, `type=oci,dest=FILE`).
    case ociArchive(path: String)
    /// A `docker load` archive (`docker-archive:FILE`, `type=docker,dest=FILE`): docker 25's
    /// layout, an OCI layout plus `manifest.json` [{Config, RepoTags, Layers}].
    case dockerArchive(path: String)
}

/// How an export names and writes the image.
public struct ExportOptions: Sendable {
    /// `org.opencontainers.image.ref.name` in `index.json` (OCI) and `RepoTags` (docker:
    /// full references such as `localhost/app:1`).
    public var names: [String] = []
    /// An existing archive file is replaced (else refused). Layout folders are always
    /// merged into.
    public var overwrite: Bool = false
    /// The time of every archive entry (`SOURCE_DATE_EPOCH`; default 0), so the same image
    /// gives the same archive bytes.
    public var sourceDateEpoch: Int64? = nil

    public init(names: [String] = [], overwrite: Bool = false, sourceDateEpoch: Int64? = nil) {
        self.names = names; self.overwrite = overwrite; self.sourceDateEpoch = sourceDateEpoch
    }
}

extension ImageStore {
    /// Writes stored manifest `manifest` to `destination`. Archives are written to a
    /// temporary file beside the destination, fsynced and renamed, so the destination is
    /// either the old file (or none) or the whole new archive.
    public func export(manifest: Digest, to destination: ExportDestination, options: ExportOptions = ExportOptions()) throws(ImageError) {
        let gate = try content.lock("pull", shared: true)
        defer { close(gate) }
        let image = try baseImage(manifest: manifest, reference: manifest.description)
        let configDigest = try configDescriptor(manifest).digest
        let blobs = [manifest, configDigest] + image.layers.map(\.digest)
        let manifestSize = Int64(try content.read(manifest).count)
        let index = indexJSON(manifest: manifest, size: manifestSize, names: options.names)
        switch destination {
        case .ociLayout(let path):
            try writeLayout(path, blobs: blobs, manifest: manifest, size: manifestSize, names: options.names)
        case .ociArchive(let path):
            try writeArchive(path, options: options, files: [("oci-layout", Self.layoutMarker), ("index.json", index)], blobs: blobs)
        case .dockerArchive(let path):
            let m = JSONValue.array([.object([
                "Config": .string("blobs/sha256/" + configDigest.hex),
                "RepoTags": .array(options.names.map { .string($0) }),
                "Layers": .array(image.layers.map { .string("blobs/sha256/" + $0.digest.hex) }),
            ])])
            try writeArchive(path, options: options,
                             files: [("manifest.json", Array(m.serialized().utf8)), ("oci-layout", Self.layoutMarker), ("index.json", index)],
                             blobs: blobs)
        }
    }

    /// Unpacks the image's layers, whiteouts applied, into `directory` (a descriptor of an
    /// empty folder the caller opened; `type=local`). Returns unpack warnings (device
    /// nodes skipped). Files belong to the agent; owners are recorded as LayerUnpacker does.
    public func exportRootFilesystem(manifest: Digest, into directory: Int32) throws(ImageError) -> [String] {
        let gate = try content.lock("pull", shared: true)
        defer { close(gate) }
        let image = try baseImage(manifest: manifest, reference: manifest.description)
        var warnings: [String] = []
        for l in image.layers {
            warnings += try LayerUnpacker(image: manifest.description, layer: l.digest, applyWhiteouts: true)
                .unpack(blob: content.blobPath(l.digest), root: directory)
        }
        return warnings
    }

    static let layoutMarker = Array(#"{"imageLayoutVersion":"1.0.0"}"#.utf8)

    func configDescriptor(_ manifest: Digest) throws(ImageError) -> Descriptor {
        let doc = try ManifestDocument.parse(try content.read(manifest), contentType: nil, reference: manifest.description, digest: manifest)
        guard case .manifest(let c, _) = doc else { throw .badManifest(reference: manifest.description, digest: manifest.description, problem: "an index") }
        return c
    }

    func indexEntry(manifest: Digest, size: Int64, name: String?) -> JSONValue {
        let stored = (try? content.read(manifest)).flatMap { try? JSONValue.parse($0) }
        let mediaType: String = if case .object(let m)? = stored, let t = m["mediaType"]?.string { t } else { MediaType.ociManifest }
        var o: [String: JSONValue] = ["mediaType": .string(mediaType), "digest": .string(manifest.description), "size": .unsigned(UInt64(size))]
        if let name { o["annotations"] = .object(["org.opencontainers.image.ref.name": .string(name)]) }
        return .object(o)
    }

    func indexJSON(manifest: Digest, size: Int64, names: [String], keeping old: [JSONValue] = []) -> [UInt8] {
        let entries = names.isEmpty ? [indexEntry(manifest: manifest, size: size, name: nil)]
            : names.map { indexEntry(manifest: manifest, size: size, name: $0) }
        let doc = JSONValue.object(["schemaVersion": .unsigned(2), "mediaType": .string(MediaType.ociIndex), "manifests": .array(old + entries)])
        return Array(doc.serialized().utf8)
    }

    /// `oci:DIR`: blobs copied in (temp name, renamed), then `index.json` replaced.
    private func writeLayout(_ path: String, blobs: [Digest], manifest: Digest, size: Int64, names: [String]) throws(ImageError) {
        for d in [path, path + "/blobs", path + "/blobs/sha256"] where mkdir(d, 0o755) != 0 && errno != EEXIST {
            throw .exportDestination(path: d, problem: String(cString: strerror(errno)))
        }
        for d in blobs where access(path + "/blobs/sha256/" + d.hex, F_OK) != 0 {
            try copyFile(content.blobPath(d), to: path + "/blobs/sha256/" + d.hex)
        }
        // Entries of other images stay; one with a name given here is replaced.
        var old: [JSONValue] = []
        let fd = open(path + "/index.json", O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            defer { close(fd) }
            if let b = readUpTo(fd, limit: RegistryClient.maxManifestBytes), case .object(let o)? = try? JSONValue.parse(b),
               case .array(let ms)? = o["manifests"] {
                old = ms.filter { m in
                    guard case .object(let e) = m, case .object(let a)? = e["annotations"],
                          let n = a["org.opencontainers.image.ref.name"]?.string else { return !names.isEmpty }
                    return !names.contains(n)
                }
            }
        }
        try writeFile(Self.layoutMarker, to: path + "/oci-layout")
        try writeFile(indexJSON(manifest: manifest, size: size, names: names, keeping: old), to: path + "/index.json")
        syncDirectory(path)
    }

    /// A tar of `files` and then the blobs under `blobs/sha256/`, every entry owned by
    /// 0:0 with the same time, written beside `path` and moved into place.
    private func writeArchive(_ path: String, options: ExportOptions, files: [(String, [UInt8])], blobs: [Digest]) throws(ImageError) {
        if !options.overwrite && access(path, F_OK) == 0 {
            throw .exportDestination(path: path, problem: "exists (replace it with --force)")
        }
        let tmp = path + ".tmp-" + String(getpid())
        unlink(tmp)
        guard let a = archive_write_new() else { throw .store(path: tmp, operation: "archive_write_new", errno: ENOMEM) }
        var ok = false
        defer { archive_write_free(a); if !ok { unlink(tmp) } }
        archive_write_set_format_pax_restricted(a)
        archive_write_set_bytes_in_last_block(a, 1)
        guard archive_write_open_filename(a, tmp) == ARCHIVE_OK else {
            throw .exportDestination(path: path, problem: "cannot be written: " + LayerUnpacker.errorString(a))
        }
        let time = options.sourceDateEpoch ?? 0
        func fail() -> ImageError { .exportDestination(path: path, problem: "cannot be written: " + LayerUnpacker.errorString(a)) }
        func header(_ name: String, dir: Bool, size: Int64) throws(ImageError) {
            let e = archive_entry_new()
            defer { archive_entry_free(e) }
            archive_entry_copy_pathname(e, name)
            archive_entry_set_filetype(e, UInt32(dir ? Glibc.S_IFDIR : Glibc.S_IFREG))
            archive_entry_set_perm(e, dir ? 0o755 : 0o644)
            archive_entry_set_size(e, size)
            archive_entry_set_mtime(e, time_t(time), 0)
            guard archive_write_header(a, e) == ARCHIVE_OK else { throw fail() }
        }
        func body(_ bytes: [UInt8]) throws(ImageError) {
            let n = bytes.withUnsafeBytes { archive_write_data(a, $0.baseAddress, $0.count) }
            guard n == bytes.count else { throw fail() }
        }
        for (name, bytes) in files {
            try header(name, dir: false, size: Int64(bytes.count))
            try body(bytes)
        }
        try header("blobs/", dir: true, size: 0)
        try header("blobs/sha256/", dir: true, size: 0)
        var seen = Set<Digest>()
        for d in blobs where seen.insert(d).inserted {
            let src = content.blobPath(d)
            let fd = open(src, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw .store(path: src, operation: "open", errno: errno) }
            defer { close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0 else { throw .store(path: src, operation: "stat", errno: errno) }
            try header("blobs/sha256/" + d.hex, dir: false, size: Int64(st.st_size))
            var buf = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                guard n >= 0 else { throw .store(path: src, operation: "read", errno: errno) }
                if n == 0 { break }
                try body(Array(buf[..<n]))
            }
        }
        guard archive_write_close(a) == ARCHIVE_OK else { throw fail() }
        let sfd = open(tmp, O_RDONLY | O_CLOEXEC)
        guard sfd >= 0, fsync(sfd) == 0 else { throw .exportDestination(path: tmp, problem: "fsync: " + String(cString: strerror(errno))) }
        close(sfd)
        if options.overwrite {
            guard rename(tmp, path) == 0 else { throw .exportDestination(path: path, problem: String(cString: strerror(errno))) }
        } else {
            // link(2) fails if the destination appeared meanwhile: never replaced without --force.
            guard link(tmp, path) == 0 else {
                throw .exportDestination(path: path, problem: errno == EEXIST ? "exists (replace it with --force)" : String(cString: strerror(errno)))
            }
            unlink(tmp)
        }
        ok = true
        let parent = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        syncDirectory(parent.isEmpty ? "/" : parent)
    }
}
