import AgentSupport
import CArchive
import FoundationEssentials
import Glibc

/// Where `ImageStore.export` writes an image (the `--output` types of a build and the
/// destinations of `agent image export`).
public enum ExportDestination: Sendable, Equatable {
    /// An OCI image layout folder (`oci:DIR[:TAG]`), made if missing; blobs are added.
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
        throw .unsupported(reference: "export", problem: "export is not implemented yet")
    }

    /// Unpacks the image's layers, whiteouts applied, into `directory` (a descriptor of an
    /// empty folder the caller opened; `type=local`). Returns unpack warnings (device
    /// nodes skipped). Files belong to the agent; owners are recorded as LayerUnpacker does.
    public func exportRootFilesystem(manifest: Digest, into directory: Int32) throws(ImageError) -> [String] {
        throw .unsupported(reference: "export", problem: "exportRootFilesystem is not implemented yet")
    }
}
