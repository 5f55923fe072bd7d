import AgentSupport
import FoundationEssentials
import Images
import SandboxPolicy

/// Grants or refuses the image a job (or `agent exec --image`) names, from the operator's
/// policy `images` rules: the registry must be in `images.allowedRegistries` (default:
/// none), and when `images.allowedImages` is set the reference must be in it. Local
/// sources (`oci:`, `oci-archive:`, `docker-archive:`) are host paths: admitted by
/// `admitLocal` beneath the job's folder or a root of `images.localRoots`, by descriptor.
/// Nothing is fetched here; the runner pulls or imports what was granted.
public enum ImageGate {
    /// Why `source` is refused (naming the reference and the policy key), or nil. Local
    /// sources are not refused here: their path is admitted like other host paths.
    public static func refusal(_ source: ImageSource, policy: AgentPolicy.ImagePolicy) -> String? {
        guard case .registry(let ref) = source else {
            if policy.allowedImages != nil {
                return "\(jsonQuoted(source.description)): a local image source is not one of the images the operator allows "
                    + "(images.allowedImages in the agent policy)"
            }
            return nil
        }
        let allowed = policy.allowedRegistries
        guard allowed.contains(where: { $0 == ref.registry || $0 == ref.hostName }) else {
            return "\(jsonQuoted(ref.description)) is from registry \(ref.registry), which the agent policy does not allow "
                + "(images.allowedRegistries: [\(allowed.map(jsonQuoted).joined(separator: ", "))])"
        }
        if let list = policy.allowedImages, !list.contains(ref.description) {
            return "\(jsonQuoted(ref.description)) is not one of the images the operator allows (images.allowedImages in the agent policy)"
        }
        return nil
    }

    /// Throws the refusal as a job validation error at `image` (exit 2).
    static func admit(_ job: JobSpec, file: String, policy: AgentPolicy) throws {
        guard case .image(let source) = job.image, let why = refusal(source, policy: policy.images) else { return }
        throw JobValidationError(file: file, path: "image", message: why)
    }

    /// Opens the folder or file of a local image source beneath the job's folder or a root of
    /// `images.localRoots` (nil for registry images). `oci:` must be a folder, the archives files.
    static func admitLocal(_ job: JobSpec, file: String, grant: OperatorGrant) throws -> AdmittedPath? {
        guard case .image(let source) = job.image else { return nil }
        let path: String, wantsFolder: Bool
        switch source {
        case .registry: return nil
        case .ociLayout(let p, _): path = p; wantsFolder = true
        case .ociArchive(let p), .dockerArchive(let p): path = p; wantsFolder = false
        }
        let g = PathGrant(base: job.baseDirectory, roots: grant.policy.images.localRoots, rootsKey: "images.localRoots",
                          howToGrant: "images.localRoots in the agent policy")
        let opened = try HostPathGate.open(path, grant: g, protected: grant.protected, kind: .directoryOrFile,
                                           file: file, jsonPath: "image")
        if opened.isDirectory != wantsFolder {
            throw JobValidationError(file: file, path: "image", message: "\(jsonQuoted(source.description)): \(jsonQuoted(path)) is "
                + (wantsFolder ? "not a folder (oci: names an OCI layout folder)" : "a folder (\(source.transport) names an archive file)"))
        }
        return opened
    }
}
