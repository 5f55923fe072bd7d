import AgentSupport
import CArchive
import Crypto
import FoundationEssentials
import Glibc

/// `docker-archive:FILE`: a `docker save` tar (plain or gzip). Its `manifest.json` names
/// the config and the layer tars by their paths in the archive; the agent reads it (a
/// first pass: docker and skopeo write it last), then takes exactly those entries out as
/// regular files (a second pass), each staged under the digest of its content (never
/// under the entry's path), and writes the OCI layout that describes them: the layers
/// are uncompressed tars, so a layer's digest is its diff_id and the config's diff_ids
/// check them when the snapshots are made. The staged layout is imported as `oci:`.
extension ImageStore {
    public func importDockerArchive(file: String, as reference: String) throws(ImageError) -> PreparedImage {
        let name = "docker-archive:" + file
        let stage = content.temporaryPath("docker-archive")
        guard mkdir(stage, 0o700) == 0 else { throw .store(path: stage, operation: "create", errno: errno) }
        defer { removeStage(stage) }
        for d in ["/blobs", "/blobs/sha256"] where mkdir(stage + d, 0o700) != 0 {
            throw .store(path: stage + d, operation: "create", errno: errno)
        }
        let reader = ArchiveEntries(file: file, name: name)
        var manifest: [UInt8]?
        try reader.each { (path: String, a: OpaquePointer) throws(ImageError) -> Bool in
            guard path == "manifest.json" else { return false }
            manifest = try reader.readAll(a, path: path, limit: 1 << 20)
            return true
        }
        guard let manifest, case .array(let images)? = try? JSONValue.parse(manifest), images.count == 1,
              case .object(let m) = images[0], let configPath = m["Config"]?.string, let layerPaths = m["Layers"]?.strings else {
            throw .unsupported(reference: name, problem: "no manifest.json naming one image's Config and Layers")
        }
        // Entry path -> descriptor of what was staged from it.
        var staged: [String: (digest: Digest, size: Int64)] = [:]
        let wanted = Set([configPath] + layerPaths).map(ArchiveEntries.normalised)
        try reader.each { (path: String, a: OpaquePointer) throws(ImageError) -> Bool in
            guard wanted.contains(path), staged[path] == nil else { return false }
            staged[path] = try reader.stage(a, path: path, into: stage)
            return true
        }
        func desc(_ p: String, _ mediaType: String) throws(ImageError) -> JSONValue {
            guard let s = staged[ArchiveEntries.normalised(p)] else {
                throw .unsupported(reference: name, problem: "manifest.json names \"\(p)\", which is not a file of the archive")
            }
            return .object(["mediaType": .string(mediaType), "digest": .string(s.digest.description), "size": .unsigned(UInt64(s.size))])
        }
        let doc = JSONValue.object([
            "schemaVersion": .unsigned(2), "mediaType": .string("application/vnd.oci.image.manifest.v1+json"),
            "config": try desc(configPath, "application/vnd.oci.image.config.v1+json"),
            "layers": .array(try layerPaths.map { (p: String) throws(ImageError) -> JSONValue in try desc(p, "application/vnd.oci.image.layer.v1.tar") }),
        ])
        let bytes = Array(doc.serialized().utf8)
        let d = Digest(of: bytes)
        try writeFile(bytes, to: stage + "/blobs/sha256/" + d.hex)
        let index = JSONValue.object(["schemaVersion": .unsigned(2), "manifests": .array([.object([
            "mediaType": .string("application/vnd.oci.image.manifest.v1+json"), "digest": .string(d.description),
            "size": .unsigned(UInt64(bytes.count))])])])
        try writeFile(Array(index.serialized().utf8), to: stage + "/index.json")
        try writeFile(Array(#"{"imageLayoutVersion": "1.0.0"}"#.utf8), to: stage + "/oci-layout")
        return try importLayout(path: stage, tag: nil, as: reference)
    }
}

/// Reads a tar (plain or gzip) entry by entry; only regular files reach `body`.
struct ArchiveEntries {
    let file: String
    let name: String

    static func normalised(_ p: String) -> String { p.split(separator: "/").filter { $0 != "." }.joined(separator: "/") }

    /// `body(path, archive)` returns whether it consumed the entry's data.
    func each(_ body: (String, OpaquePointer) throws(ImageError) -> Bool) throws(ImageError) {
        guard let a = archive_read_new() else { throw .store(path: file, operation: "archive_read_new", errno: ENOMEM) }
        defer { archive_read_free(a) }
        archive_read_support_filter_gzip(a)
        archive_read_support_format_tar(a)
        guard archive_read_open_filename(a, file, 1 << 16) == ARCHIVE_OK else {
            throw .unsupported(reference: name, problem: "cannot be read: " + LayerUnpacker.errorString(a))
        }
        while true {
            var entry: OpaquePointer?
            let r = archive_read_next_header(a, &entry)
            if r == ARCHIVE_EOF { return }
            guard r == ARCHIVE_OK || r == ARCHIVE_WARN, let e = entry else {
                throw .unsupported(reference: name, problem: "is not a readable tar: " + LayerUnpacker.errorString(a))
            }
            let path = Self.normalised(archive_entry_pathname(e).map { String(cString: $0) } ?? "")
            let regular = UInt32(archive_entry_filetype(e)) == UInt32(Glibc.S_IFREG)
            if !(regular ? try body(path, a) : false) { archive_read_data_skip(a) }
        }
    }

    func readAll(_ a: OpaquePointer, path: String, limit: Int) throws(ImageError) -> [UInt8] {
        var out: [UInt8] = []
        try copy(a, path: path) { chunk throws(ImageError) in
            out += chunk
            if out.count > limit { throw .unsupported(reference: name, problem: "\(path) is larger than \(limit) bytes") }
        }
        return out
    }

    /// Writes the entry to `stage/blobs/sha256/<its digest>` (temp name, then renamed).
    func stage(_ a: OpaquePointer, path: String, into stage: String) throws(ImageError) -> (digest: Digest, size: Int64) {
        let tmp = stage + "/entry.tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .store(path: tmp, operation: "create", errno: errno) }
        var h = SHA256(), size: Int64 = 0
        do {
            try copy(a, path: path) { chunk throws(ImageError) in
                h.update(data: chunk)
                size += Int64(chunk.count)
                guard writeAll(fd, chunk) else { throw .store(path: tmp, operation: "write", errno: errno) }
            }
        } catch { close(fd); unlink(tmp); throw error }
        close(fd)
        let d = Digest(finalized: h)
        guard rename(tmp, stage + "/blobs/sha256/" + d.hex) == 0 else { let e = errno; unlink(tmp); throw .store(path: tmp, operation: "rename", errno: e) }
        return (d, size)
    }

    func copy(_ a: OpaquePointer, path: String, _ sink: (ArraySlice<UInt8>) throws(ImageError) -> Void) throws(ImageError) {
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buf.withUnsafeMutableBytes { archive_read_data(a, $0.baseAddress, $0.count) }
            if n == 0 { return }
            guard n > 0 else { throw .unsupported(reference: name, problem: "entry \"\(path)\" cannot be read: " + LayerUnpacker.errorString(a)) }
            try sink(buf[..<n])
        }
    }
}
