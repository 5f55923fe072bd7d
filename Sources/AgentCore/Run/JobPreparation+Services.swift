import AgentSupport
import FoundationEssentials
import Glibc
import Images
import Sandbox

extension JobRunner {
    /// Why the services could not be prepared, with run-job's exit code (2: a config error
    /// found once the images are known; 3: an image could not be had).
    struct ServicePreparationFailure: Error {
        var code: Int32
        var message: String
    }

    /// Pulls each image service's image (as the job's is pulled), resolves the user it
    /// runs as, and refuses two services that claim one TCP port (health check or exposed
    /// port), all before anything starts.
    func prepareServices(_ admitted: AdmittedJob) throws(ServicePreparationFailure) -> [PreparedService] {
        let job = admitted.spec
        var out: [PreparedService] = []
        var store: ImageStore?
        for (i, spec) in job.services.enumerated() {
            var s = PreparedService(index: i, spec: spec)
            s.rootfs = admitted.serviceRoots[i]?.host
            if case .image(let source) = spec.name {
                do {
                    if store == nil {
                        var st = try ImageStore(stateDirectory: options.stateDirectory,
                                                insecureRegistries: options.policy.images.insecureRegistries)
                        st.storeMaxBytes = Int64(clamping: options.policy.images.storeMaxBytes)
                        st.credentials = try RegistryCredentials.load(environment: options.environment)
                        // The pod maps ids automatically, as steps do: the same owner mode (README "Owners").
                        st.owners = OwnerRanges.forSteps(.automatic)
                        store = st
                    }
                    let prepared = try store!.prepare(source, pull: job.pull)
                    s.image = prepared
                    if !spec.userGiven { s.imageUser = try ImageUser.resolve(prepared) }
                } catch let e as ImageUser.Failure {
                    throw ServicePreparationFailure(code: 3, message: "services[\(i)]: \(e)")
                } catch {
                    throw ServicePreparationFailure(code: 3, message: "services[\(i)]: image \(source): \(error)")
                }
            }
            // Known only once the image is: nothing to run is a config error, before anything starts.
            if s.argv.isEmpty {
                throw ServicePreparationFailure(code: 2, message: "\(admitted.file): services[\(i)]: the image \(spec.displayName) "
                    + "names no Entrypoint or Cmd; give \"command\"")
            }
            out.append(s)
        }
        var owner: [UInt16: Int] = [:]
        for s in out {
            for port in s.claimedPorts {
                if let first = owner[port], first != s.index {
                    let how = s.exposedTCPPorts.contains(port) ? "exposed by its image" : "its health check"
                    throw ServicePreparationFailure(code: 2, message: "\(admitted.file): services[\(s.index)]: port \(port) (\(how)) "
                        + "is also claimed by services[\(first)] (services share one network; give one another port)")
                }
                owner[port] = s.index
            }
        }
        return out
    }

    /// The job's one network (a pod) when it has services or a job-level `outbound`
    /// network: every container of the job whose network is the job's joins it.
    func makePod(_ job: JobSpec) async throws -> Pod? {
        // An outbound job whose steps all chose another network (or are builds) needs none.
        let joined = job.steps.contains { $0.build == nil && ($0.network ?? job.network) == job.network }
        guard !job.services.isEmpty || (job.network == .outbound && joined) else { return nil }
        var config = Pod.Configuration(network: job.network)
        if job.network == .outbound { config.outbound = ExecPolicyGate.outbound(options.policy.sandbox.network) }
        config.allowRoot = options.allowRoot
        return try await Pod.create(config)
    }
}
