import AgentSupport
import FoundationEssentials
import Glibc

/// An image written into the store by `ImageStore.commit`.
public struct CommittedImage: Sendable, Equatable {
    /// The OCI manifest's digest (what tags point at, what a push uploads).
    public var manifest: Digest
    public var manifestSize: Int64
    public var config: Descriptor
    /// All layers, base layers first.
    public var layers: [Descriptor]
}

extension ImageStore {
    /// The full config of a stored manifest (a build's base), with its manifest's layers.
    public func baseImage(manifest: Digest, reference: String) throws(ImageError) -> (config: ImageConfigDocument, layers: [Descriptor]) {
        let doc = try ManifestDocument.parse(try content.read(manifest), contentType: nil, reference: reference, digest: manifest)
        guard case .manifest(let c, let layers) = doc else {
            throw .badManifest(reference: reference, digest: manifest.description, problem: "stored manifest is an index")
        }
        let config = try ImageConfigDocument.parse(try content.read(c.digest), reference: reference, digest: c.digest)
        guard config.diffIDs.count == layers.count else {
            throw .badManifest(reference: reference, digest: manifest.description,
                               problem: "\(layers.count) layers but \(config.diffIDs.count) diff_ids in the config")
        }
        return (config, layers)
    }

    /// Writes an image: the layers of `base` (a stored manifest; nil for `scratch`) reused
    /// by digest, then `layers` (empty ones skipped), and `config` whose `rootfs.diff_ids`
    /// are set here to the base's followed by the new layers' (history is the caller's).
    /// The config blob and an OCI manifest go into the content store; each of `tags` (an
    /// image reference, normalised as `agent image` does) is recorded in the RefIndex so
    /// jobs and `agent exec --image` run it without a registry.
    public func commit(base: Digest?, layers: [WrittenLayer], config: ImageConfigDocument,
                       tags: [String] = []) throws(ImageError) -> CommittedImage {
        // Shared like a pull: a prune cannot take the blobs between being written and tagged.
        let gate = try content.lock("pull", shared: true)
        defer { close(gate) }
        var descriptors: [Descriptor] = []
        var diffIDs: [Digest] = []
        if let base {
            let b = try baseImage(manifest: base, reference: base.description)
            descriptors = b.layers.map(Self.ociLayer)
            diffIDs = b.config.diffIDs
        }
        for l in layers where !l.isEmpty {
            guard content.has(l.descriptor.digest) else { throw .notPresent(reference: "layer \(l.descriptor.digest)") }
            descriptors.append(l.descriptor)
            diffIDs.append(l.diffID)
        }
        var doc = config
        doc.diffIDs = diffIDs
        let configBytes = doc.serialized()
        let configDigest = try content.put(configBytes)
        let configDesc = Descriptor(mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: Int64(configBytes.count))
        let manifest = JSONValue.object([
            "schemaVersion": .unsigned(2),
            "mediaType": .string(MediaType.ociManifest),
            "config": Self.json(configDesc),
            "layers": .array(descriptors.map(Self.json)),
        ])
        let bytes = Array(manifest.serialized().utf8)
        let digest = try content.put(bytes)
        for t in tags { try tagLocked(digest, as: t) }
        return CommittedImage(manifest: digest, manifestSize: Int64(bytes.count), config: configDesc, layers: descriptors)
    }

    /// Records `reference` → stored manifest `manifest` in the RefIndex.
    public func tag(_ manifest: Digest, as reference: String) throws(ImageError) {
        let gate = try content.lock("pull", shared: true)
        defer { close(gate) }
        try tagLocked(manifest, as: reference)
    }

    private func tagLocked(_ manifest: Digest, as reference: String) throws(ImageError) {
        guard content.has(manifest) else { throw .notPresent(reference: manifest.description) }
        let key: String
        do { key = try ImageReference.parse(reference).description } catch {
            throw .unsupported(reference: reference, problem: "\(error)")
        }
        let record = ImageRecord(reference: key, manifest: manifest, digest: manifest, pulled: Int64(time(nil)))
        try refs.update { $0[key] = record }
    }

    /// A base layer as an OCI manifest lists it (Docker's media types have OCI twins).
    static func ociLayer(_ d: Descriptor) -> Descriptor {
        var o = d
        switch d.mediaType {
        case "application/vnd.docker.image.rootfs.diff.tar.gzip": o.mediaType = "application/vnd.oci.image.layer.v1.tar+gzip"
        case "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": o.mediaType = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        default: break
        }
        o.os = nil; o.architecture = nil; o.variant = nil
        return o
    }

    static func json(_ d: Descriptor) -> JSONValue {
        .object(["mediaType": .string(d.mediaType), "digest": .string(d.digest.description), "size": .unsigned(UInt64(d.size))])
    }
}
