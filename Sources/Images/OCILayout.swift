import AgentSupport
import FoundationEssentials
import Glibc

/// Reads an OCI image layout folder (`oci:DIR[:TAG]`, image-spec image-layout.md) into the
/// store: `index.json` names the manifest (by its `org.opencontainers.image.ref.name`
/// annotation, or the only one), and every blob is copied from `blobs/sha256/HEX` with its
/// digest and size checked as for a registry. The folder is the operator's (it is never
/// a job's: admission refuses local sources), yet its content is verified all the same.
struct OCILayout {
    let path: String
    let tag: String?
    var name: String { "oci:" + path + (tag.map { ":" + $0 } ?? "") }

    func read(_ file: String, max: Int) throws(ImageError) -> [UInt8] {
        let p = path + "/" + file
        let fd = open(p, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .store(path: p, operation: "open", errno: errno) }
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
        let fd = open(p, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .store(path: p, operation: "open", errno: errno) }
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
        return PreparedImage(reference: reference, digest: desc.digest, config: config, layers: s.paths, warnings: s.warnings)
    }
}
