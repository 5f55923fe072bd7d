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
        throw .unsupported(reference: reference, problem: "baseImage is not implemented yet")
    }

    /// Writes an image: the layers of `base` (a stored manifest; nil for `scratch`) reused
    /// by digest, then `layers` (empty ones skipped), and `config` whose `rootfs.diff_ids`
    /// are set here to the base's followed by the new layers' (history is the caller's).
    /// The config blob and an OCI manifest go into the content store; each of `tags` (an
    /// image reference, normalised as `agent image` does) is recorded in the RefIndex so
    /// jobs and `agent exec --image` run it without a registry.
    public func commit(base: Digest?, layers: [WrittenLayer], config: ImageConfigDocument,
                       tags: [String] = []) throws(ImageError) -> CommittedImage {
        throw .unsupported(reference: "commit", problem: "commit is not implemented yet")
    }

    /// Records `reference` → stored manifest `manifest` in the RefIndex.
    public func tag(_ manifest: Digest, as reference: String) throws(ImageError) {
        throw .unsupported(reference: reference, problem: "tag is not implemented yet")
    }
}
