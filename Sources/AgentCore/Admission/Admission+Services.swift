import AgentSupport
import FoundationEssentials
import Images

extension Admission {
    /// Every service's `name` is a request, granted as the job's `image` is: a registry
    /// image by the policy's `images` rules (`ImageGate`), a root filesystem folder by
    /// descriptor beneath the job's folder or a root of `rootfsRoots` (`HostPathGate`).
    /// Local image sources (`oci:`, archives) are refused for services (not supported yet).
    /// Returns the opened folders by service index.
    static func admitServices(_ job: JobSpec, file: String, grant: OperatorGrant) throws -> [Int: AdmittedPath] {
        var roots: [Int: AdmittedPath] = [:]
        for (i, service) in job.services.enumerated() {
            let path = "services[\(i)].name"
            switch service.name {
            case .host:
                continue
            case .image(let source):
                guard case .registry = source else {
                    throw JobValidationError(file: file, path: path, message: "\(jsonQuoted(source.description)): "
                        + "a service runs a registry image, \"host\" or {\"rootfs\": DIR}; local image sources are not supported for services")
                }
                if let why = ImageGate.refusal(source, policy: grant.policy.images) {
                    throw JobValidationError(file: file, path: path, message: why)
                }
            case .rootfs(let dir):
                let g = PathGrant(base: job.baseDirectory, roots: grant.policy.rootfsRoots, rootsKey: "rootfsRoots",
                                  howToGrant: "rootfsRoots in the agent policy")
                roots[i] = try HostPathGate.open(dir, grant: g, protected: grant.protected, kind: .directory,
                                                 file: file, jsonPath: path + ".rootfs")
            }
        }
        return roots
    }
}
