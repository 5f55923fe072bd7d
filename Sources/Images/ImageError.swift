/// Why an image could not be pulled, stored, unpacked or used. Every case names what
/// failed: the reference, the registry, the digest, the layer entry.
public enum ImageError: Error, CustomStringConvertible, Sendable {
    /// The registry answered with something other than success.
    case registry(registry: String, what: String, status: Int, detail: String)
    /// The registry could not be reached or the transfer broke off.
    case transfer(registry: String, what: String, message: String)
    /// Downloaded content does not match its digest or size; nothing was stored.
    case digestMismatch(registry: String, expected: Digest, actual: String)
    case sizeMismatch(registry: String, digest: Digest, expected: Int64, actual: Int64)
    /// A manifest, index or config that cannot be used (schema 1, unknown media type, no
    /// manifest for this platform, malformed JSON).
    case badManifest(reference: String, digest: String, problem: String)
    /// A layer entry that would write outside its snapshot, or is otherwise refused.
    case hostileLayer(image: String, layer: Digest, entry: String, problem: String)
    /// Subordinate mode: the layer's owners could not be applied (`entry`: the one the
    /// owners process stopped at, or nil when it failed before any, e.g. at newuidmap).
    case ownersNotApplied(image: String, layer: Digest, entry: String?, problem: String)
    /// The uncompressed layer does not hash to the config's diff_id.
    case diffIDMismatch(image: String, layer: Digest, expected: Digest, actual: Digest)
    /// The store itself (a file operation on the agent's own state folder).
    case store(path: String, operation: String, errno: Int32)
    /// The image is not in the store (`"pull": "never"`, `agent image inspect`).
    case notPresent(reference: String)
    /// The registry asks for credentials the operator did not give, or refused them.
    case unauthorized(registry: String, challenge: String)
    /// A source this build cannot read yet (`oci:`, `oci-archive:`, `docker-archive:`).
    case unsupported(reference: String, problem: String)
    /// A layer could not be written (LayerWriter): `path` is the entry inside the layer.
    case layerWrite(path: String, problem: String)
    /// A push the registry did not complete (`what`: the blob or manifest).
    case push(registry: String, what: String, problem: String)
    /// An export destination that exists (without `force`) or cannot be written.
    case exportDestination(path: String, problem: String)

    public var description: String {
        switch self {
        case .registry(let r, let what, let status, let detail):
            return "registry \(r): \(what): HTTP \(status)" + (detail.isEmpty ? "" : " (\(detail))")
        case .transfer(let r, let what, let message):
            return "registry \(r): \(what): \(message)"
        case .digestMismatch(let r, let expected, let actual):
            return "registry \(r): content of \(expected) has digest \(actual); nothing was stored"
        case .sizeMismatch(let r, let d, let expected, let actual):
            return "registry \(r): \(d) is \(actual) bytes, its descriptor says \(expected); nothing was stored"
        case .badManifest(let ref, let d, let problem):
            return "\(ref): manifest \(d): \(problem)"
        case .hostileLayer(let image, let layer, let entry, let problem):
            return "\(image): layer \(layer): entry \(jsonish(entry)): \(problem); the layer was not unpacked"
        case .ownersNotApplied(let image, let layer, let entry, let problem):
            return "\(image): layer \(layer): " + (entry.map { "entry \(jsonish($0)): " } ?? "") + problem + "; the layer was not unpacked"
        case .diffIDMismatch(let image, let layer, let expected, let actual):
            return "\(image): layer \(layer) uncompresses to \(actual), its config says diff_id \(expected)"
        case .store(let path, let op, let e):
            return "image store: \(op) \(path): \(String(cString: strerror(e)))"
        case .notPresent(let ref):
            return "\(ref) is not in the image store (agent image pull \(ref))"
        case .unauthorized(let r, let challenge):
            return "registry \(r) refused access (\(challenge)); credentials come from the operator: $REGISTRY_AUTH_FILE or ~/.docker/config.json"
        case .unsupported(let ref, let problem):
            return "\(ref): \(problem)"
        case .layerWrite(let path, let problem):
            return "layer entry \(jsonish(path)): \(problem); no layer was stored"
        case .push(let r, let what, let problem):
            return "registry \(r): push \(what): \(problem)"
        case .exportDestination(let path, let problem):
            return "export to \(path): \(problem)"
        }
    }
}

import Glibc

extension ImageError {
    /// A layer that cannot be written (a bound exceeded, a hostile name or stream): names
    /// the path inside the layer. Nothing was stored.
    static func layer(_ path: String, _ problem: String) -> ImageError {
        .layerWrite(path: path, problem: problem)
    }
}
