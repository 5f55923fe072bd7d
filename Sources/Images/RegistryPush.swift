import AgentSupport
import FoundationEssentials
import Glibc

/// How a push uploads blobs.
public struct PushOptions: Sendable {
    /// Blobs up to this size go in one `PUT`; larger ones in `PATCH` chunks.
    public var monolithicLimit: Int64 = 32 << 20
    /// The size of one `PATCH` chunk.
    public var chunkSize: Int64 = 16 << 20
    /// Repositories of the destination registry to try a cross-repository mount from,
    /// for every blob (besides those the store's references on that registry name).
    public var mountFrom: [String] = []

    public init() {}
}

/// What a push did, blob by blob (tests and progress count them).
public struct PushReport: Sendable, Equatable {
    /// The manifest's digest, as the registry confirmed it (`Docker-Content-Digest`).
    public var digest: Digest
    /// Blobs the registry already had (`HEAD` 200).
    public var present: [Digest] = []
    /// Blobs mounted from another repository (`POST ?mount=` 201).
    public var mounted: [Digest] = []
    /// Blobs uploaded in one request.
    public var uploadedMonolithic: [Digest] = []
    /// Blobs uploaded in chunks.
    public var uploadedChunked: [Digest] = []
    /// Bytes sent in blob uploads.
    public var bytesUploaded: Int64 = 0
}

extension ImageStore {
    /// Pushes stored manifest `manifest` (with its config and layers) to `destination`
    /// (its tag, or its digest when it names one). Credentials are the operator's
    /// (`credentials`); plain HTTP only for loopback and `insecureRegistries`. Admission of
    /// the destination registry (policy `images.allowedRegistries`) is the caller's.
    public func push(manifest: Digest, to destination: ImageReference, options: PushOptions = PushOptions()) throws(ImageError) -> PushReport {
        throw .unsupported(reference: destination.description, problem: "push is not implemented yet")
    }
}
