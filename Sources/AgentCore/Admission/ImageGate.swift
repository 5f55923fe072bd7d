import AgentSupport
import FoundationEssentials
import Images
import SandboxPolicy

/// Grants or refuses the image a job (or `agent exec --image`) names, from the operator's
/// policy `images` rules: the registry must be in `images.allowedRegistries` (default:
/// none), and when `images.allowedImages` is set the reference must be in it. Local
/// sources (`oci:`, `oci-archive:`, `docker-archive:`) are host paths a job cannot be
/// granted yet. Nothing is fetched here; the runner pulls what was granted.
public enum ImageGate {
    /// Why `source` is refused (naming the reference and the policy key), or nil.
    public static func refusal(_ source: ImageSource, policy: AgentPolicy.ImagePolicy) -> String? {
        guard case .registry(let ref) = source else {
            return "\(jsonQuoted(source.description)): local image sources cannot be given to a job yet "
                + "(use a registry in images.allowedRegistries of the agent policy)"
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
}
