import AgentSupport
import CAgentSandbox
import FoundationEssentials
import Glibc

/// Reads an OCI image layout folder (`oci:DIR[:TAG]`, image-spec image-layout.md) into the
/// store: `index.json` names the manifest (by its `org.opencontainers.image.ref.name`
/// annotation, or the only one), and every blob is copied from `blobs/sha256/HEX` with its
/// digest and size checked as for a registry. The folder may be a job's (admitted beneath
/// policy `images.localRoots`, then named `/proc/self/fd/N`): every file is opened beneath
/// it with `RESOLVE_BENEATH`, so a symlink in the layout cannot lead the agent's read out.
struct OCILayout {
    let path: String
    let tag: String?
    var name: String { "oci:" + path + (tag.map { ":" + $0 } ?? "") }

    /// Opens `file` (relative) beneath the layout folder for reading.
    func open(_ file: String) throws(ImageError) -> Int32 {
        let dir = Glibc.open(path, O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard dir >= 0 else { throw .store(path: path, operation: "open", errno: errno) }
        defer { close(dir) }
        let fd = agent_resolve_open_beneath(dir, file, O_RDONLY | O_NOFOLLOW)
        guard fd >= 0 else { throw .store(path: path + "/" + file, operation: "open", errno: errno) }
        return fd
    }

    func read(_ file: String, max: Int) throws(ImageError) -> [UInt8] {
        let p = path + "/" + file
        let fd = try open(file)
        defer { close(fd) }
        guard let bytes = readUpTo(fd, limit: max) else { throw .store(path: p, operation: "read", errno: errno) }
        return bytes
    }

    /// The manifest descriptor `tag` names in `index.json`.
    func top() throws(ImageError) -> Descriptor {
        let bytes = try read("index.json", max: RegistryClient.maxManifestBytes)
        guard case .object(let o)? = try? JSONValue.parse(bytes), case .array(let items)? = o["manifests"] else {
            throw .badManifest(reference: name, digest: "index.json", problem: "not an image index")
        }
        var matches: [Descriptor] = []
        for v in items {
            guard case .object(let m) = v else { continue }
            let ref: String? = if case .object(let a)? = m["annotations"] { a["org.opencontainers.image.ref.name"]?.string } else { nil }
            if tag == nil || ref == tag {
                matches.append(try ManifestDocument.descriptor(v) { .badManifest(reference: name, digest: "index.json", problem: $0) })
            }
        }
        guard matches.count == 1, let d = matches.first else {
            throw .badManifest(reference: name, digest: "index.json", problem: matches.isEmpty
                ? "no manifest named \(jsonish(tag ?? ""))" : "\(matches.count) manifests: name one with oci:DIR:TAG")
        }
        return d
    }

    /// Copies blob `d` into the store, verified (nothing when it is already there).
    func copy(_ d: Digest, size: Int64, into store: ContentStore) throws(ImageError) {
        if store.has(d) { return }
        let lock = try store.lock("blob-" + d.hex)
        defer { close(lock) }
        if store.has(d) { return }
        let p = path + "/blobs/sha256/" + d.hex
        let fd = try open("blobs/sha256/" + d.hex)
        defer { close(fd) }
        let w = try BlobWriter(store: store, expected: d, size: size, registry: name)
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw .store(path: p, operation: "read", errno: errno) }
            if n == 0 { break }
            let ok = buf.withUnsafeBytes { w.write(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            if !ok { break }
        }
        try w.commit()
    }

    /// Manifest bytes and digest of descriptor `d`, verified.
    func manifest(_ d: Descriptor) throws(ImageError) -> [UInt8] {
        guard d.size <= Int64(RegistryClient.maxManifestBytes) else {
            throw .badManifest(reference: name, digest: d.digest.description, problem: "larger than 4 MiB")
        }
        let bytes = try read("blobs/sha256/" + d.digest.hex, max: RegistryClient.maxManifestBytes)
        let actual = Digest(of: bytes)
        guard actual == d.digest else { throw .digestMismatch(registry: name, expected: d.digest, actual: actual.description) }
        return bytes
    }
}

extension ImageStore {
    /// Imports `oci:DIR[:TAG]` into the store and records it as `reference`.
    public func importLayout(path: String, tag: String?, as reference: String) throws(ImageError) -> PreparedImage {
        let gate = try content.lock("pull", shared: true)
        defer { close(gate) }
        let layout = OCILayout(path: path, tag: tag)
        let top = try layout.top()
        var desc = top
        var bytes = try layout.manifest(desc)
        var doc = try ManifestDocument.parse(bytes, contentType: desc.mediaType, reference: layout.name, digest: desc.digest)
        var indexBytes: [UInt8]?
        if case .index(let entries) = doc {
            guard let pick = entries.first(where: { $0.os == "linux" && $0.architecture == hostArchitecture }) ?? (entries.count == 1 ? entries.first : nil) else {
                throw .badManifest(reference: layout.name, digest: desc.digest.description, problem: "no manifest for linux/\(hostArchitecture)")
            }
            indexBytes = bytes
            desc = pick
            bytes = try layout.manifest(desc)
            doc = try ManifestDocument.parse(bytes, contentType: desc.mediaType, reference: layout.name, digest: desc.digest)
        }
        guard case .manifest(let configDesc, let layers) = doc else {
            throw .badManifest(reference: layout.name, digest: desc.digest.description, problem: "an index inside an index")
        }
        try layout.copy(configDesc.digest, size: configDesc.size, into: content)
        let config = try ImageConfig.parse(try content.read(configDesc.digest), reference: layout.name, digest: configDesc.digest)
        for l in layers { try layout.copy(l.digest, size: l.size, into: content) }
        try content.put(bytes, registry: layout.name)
        if let indexBytes { try content.put(indexBytes, registry: layout.name) }
        let s = try snapshots.ensure(image: reference, layers: layers, diffIDs: config.diffIDs)
        let record = ImageRecord(reference: reference, manifest: desc.digest, digest: top.digest, pulled: Int64(time(nil)))
        try refs.update { $0[reference] = record }
        return PreparedImage(reference: reference, digest: desc.digest, config: config, layers: s.paths, warnings: s.warnings, owners: owners)
    }
}

extension ImageStore {
    /// Writes stored `reference` as an OCI image layout in `path` (a new or empty folder):
    /// `oci-layout`, `index.json` naming the manifest `tag`, and its manifest, config and
    /// layers under `blobs/sha256/`. Files are written beside and renamed, so an
    /// interrupted export never leaves a blob with the wrong content under its name.
    public func exportLayout(_ reference: String, to path: String, tag: String) throws(ImageError) {
        guard let rec = refs.get(reference) else { throw .notPresent(reference: reference) }
        let l = try load(manifest: rec.manifest, reference: reference)
        let manifest = try content.read(rec.manifest)
        for d in [path, path + "/blobs", path + "/blobs/sha256"] where mkdir(d, 0o755) != 0 && errno != EEXIST {
            throw .store(path: d, operation: "mkdir", errno: errno)
        }
        func copyBlob(_ d: Digest) throws(ImageError) {
            let dest = path + "/blobs/sha256/" + d.hex
            if access(dest, F_OK) == 0 { return }
            try copyFile(content.blobPath(d), to: dest)
        }
        try copyBlob(rec.manifest)
        try copyBlob(l.configDigest)
        for layer in l.layers { try copyBlob(layer.digest) }
        let mediaType: String
        if case .object(let o)? = try? JSONValue.parse(manifest), let t = o["mediaType"]?.string { mediaType = t } else { mediaType = MediaType.ociManifest }
        let index = "{\"schemaVersion\": 2, \"mediaType\": \"\(MediaType.ociIndex)\", \"manifests\": [{\"mediaType\": \"\(mediaType)\", "
            + "\"digest\": \"\(rec.manifest)\", \"size\": \(manifest.count), \"annotations\": {\"org.opencontainers.image.ref.name\": \(jsonQuoted(tag))}}]}\n"
        try writeFile(Array("{\"imageLayoutVersion\": \"1.0.0\"}\n".utf8), to: path + "/oci-layout")
        try writeFile(Array(index.utf8), to: path + "/index.json")
    }
}

/// Copies `source` to `dest` by way of a temporary name beside it.
func copyFile(_ source: String, to dest: String) throws(ImageError) {
    let from = open(source, O_RDONLY | O_CLOEXEC)
    guard from >= 0 else { throw .store(path: source, operation: "open", errno: errno) }
    defer { close(from) }
    let tmp = dest + ".tmp"
    let to = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard to >= 0 else { throw .store(path: tmp, operation: "create", errno: errno) }
    var buf = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = buf.withUnsafeMutableBytes { read(from, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        guard n >= 0 else { let e = errno; close(to); unlink(tmp); throw .store(path: source, operation: "read", errno: e) }
        if n == 0 { break }
        guard writeAll(to, buf[0..<n]) else { let e = errno; close(to); unlink(tmp); throw .store(path: tmp, operation: "write", errno: e) }
    }
    let ok = fsync(to) == 0
    close(to)
    guard ok, rename(tmp, dest) == 0 else { let e = errno; unlink(tmp); throw .store(path: dest, operation: "rename", errno: e) }
}

func writeFile(_ bytes: [UInt8], to dest: String) throws(ImageError) {
    let tmp = dest + ".tmp"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw .store(path: tmp, operation: "create", errno: errno) }
    let ok = writeAll(fd, bytes) && fsync(fd) == 0
    let e = errno
    close(fd)
    guard ok, rename(tmp, dest) == 0 else { unlink(tmp); throw .store(path: dest, operation: "write", errno: ok ? errno : e) }
}

extension ImageStore {
    /// A job's local image (`oci:`, `oci-archive:`, `docker-archive:`), read from `opened`
    /// (the admitted descriptor's `/proc/self/fd/N`, never the job's string), imported under
    /// `reference` (every blob verified; blobs already stored are not copied again) and
    /// leased for the container, like `prepare` does for a registry image.
    public func prepareLocal(_ source: ImageSource, opened: String, as reference: String) throws(ImageError) -> PreparedImage {
        var image: PreparedImage
        switch source {
        case .ociLayout(_, let tag): image = try importLayout(path: opened, tag: tag, as: reference)
        case .ociArchive: image = try importOCIArchive(file: opened, tag: nil, as: reference)
        case .dockerArchive: image = try importDockerArchive(file: opened, as: reference)
        case .registry: return try prepare(source)
        }
        do {
            let gate = try content.lock("pull", shared: true)
            defer { close(gate) }
            image.lease = try lease(Digest.chainIDs(image.config.diffIDs), image: image.digest)
        }
        image.warnings += applyBudget(keep: [reference])
        return image
    }
}
