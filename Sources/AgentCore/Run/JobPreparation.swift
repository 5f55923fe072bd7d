import AgentSupport
import FoundationEssentials
import Glibc
import Images
import Sandbox
import SandboxPolicy

/// An admitted job with everything its steps run in: the results folder being written, the
/// copy-on-write workspace layer, the seccomp program, progress and `log.txt`.
struct PreparedJob: Sendable {
    let admitted: AdmittedJob
    let secrets: JobSecrets
    let seccomp: SeccompPolicy
    let results: ResultsFolder
    let workspace: WorkspaceLayer
    let progress: ProgressSink
    let jobLog: JobLog
    let startedAt: Date
    /// The job's container image, pulled and unpacked (`"image": "REF"`).
    var image: PreparedImage? = nil
    /// The image's `User` as ids (`ImageUser`), the default of steps that name no user.
    var imageUser: (uid: UInt32, gid: UInt32)? = nil
    /// The job's shared network (services, or a job-level `outbound`); closed at the very end.
    var pod: Pod? = nil
    /// The job's services, their images pulled.
    var services: [PreparedService] = []

    /// Every service alias: what `/etc/hosts` resolves in each container of the pod.
    var hostAliases: [String] { services.flatMap(\.spec.aliases) }

    var spec: JobSpec { admitted.spec }
    func redact(_ text: String) -> String { secrets.redact(text) }
}

/// A failure of the prepare stage, already turned into the job's outcome (nothing ran).
struct PreparationFailure: Error {
    var outcome: JobOutcome
}

extension JobRunner {
    /// Stage 2: the seccomp program, the results folder (written beside, renamed at the end),
    /// the workspace layer over the admitted source, progress and `log.txt`. What it made is
    /// removed again if a later part fails.
    func prepare(_ admitted: AdmittedJob, output: String?, startedAt: Date) async -> Result<PreparedJob, PreparationFailure> {
        func fail(_ code: Int32, _ message: String) -> Result<PreparedJob, PreparationFailure> {
            .failure(PreparationFailure(outcome: JobOutcome(exitCode: code, state: .error, resultsPath: nil, message: message)))
        }
        let job = admitted.spec
        let secrets = JobSecrets(admitted.secrets)
        let seccomp: SeccompPolicy
        do {
            seccomp = try options.policy.seccompPolicy()
        } catch {
            return fail(3, "\(error)")
        }
        // Pulled before anything is written: an image that cannot be had fails the job here.
        var image: PreparedImage?
        var imageUser: (uid: UInt32, gid: UInt32)?
        if case .image(let source) = job.image {
            do {
                var store = try ImageStore(stateDirectory: options.stateDirectory,
                                           insecureRegistries: options.policy.images.insecureRegistries)
                store.storeMaxBytes = Int64(clamping: options.policy.images.storeMaxBytes)
                // The operator's logins ($REGISTRY_AUTH_FILE, ~/.docker/config.json of the agent's user).
                store.credentials = try RegistryCredentials.load(environment: options.environment)
                // The steps run with the automatic id mapping: their snapshots carry the
                // layers' owners when it is subordinate (README "Owners").
                store.owners = OwnerRanges.forSteps(.automatic)
                let prepared: PreparedImage
                if let local = admitted.localImage {
                    // Read through the admitted descriptor, never the job's string.
                    prepared = try store.prepareLocal(source, opened: "/proc/self/fd/\(local.descriptor)",
                                                      as: source.transport + ":" + local.host.path + (source.localTag.map { ":" + $0 } ?? ""))
                } else {
                    prepared = try store.prepare(source, pull: job.pull)
                }
                image = prepared
                // Resolved once per job, and only if a step relies on it: an image whose
                // User names nobody in its /etc/passwd fails the job before anything runs.
                if job.steps.contains(where: { !$0.userGiven }) { imageUser = try ImageUser.resolve(prepared) }
            } catch let e as ImageUser.Failure {
                return fail(3, "\(e)")
            } catch {
                return fail(3, "image \(source): \(error)")
            }
        }
        let services: [PreparedService]
        do {
            services = try prepareServices(admitted)
        } catch {
            return fail(error.code, secrets.redact(error.message))
        }
        // The pod before the results folder: a job whose network cannot be made leaves nothing.
        let pod: Pod?
        do {
            pod = try await makePod(job)
        } catch {
            return fail(3, secrets.redact("the job's network: \(error)"))
        }
        let results: ResultsFolder
        do {
            results = try makeResultsFolder(output, jobID: job.id)
        } catch let e as ResultsFolder.Failure {
            pod?.close()
            return fail(e.isUsageError ? 2 : 3, e.description)
        } catch {
            pod?.close()
            return fail(3, "\(error)")
        }
        // Layers left by an agent that was killed (their lock is free) go first.
        let stale = await WorkspaceLayer.removeStale(stateDirectory: options.stateDirectory)
        let workspace: WorkspaceLayer
        do {
            workspace = try WorkspaceLayer(stateDirectory: options.stateDirectory, jobID: job.id, source: admitted.workspace)
        } catch {
            results.discard()
            pod?.close()
            return fail(3, secrets.redact("cannot create the job's workspace layer: \(error)"))
        }
        let redact: @Sendable (String) -> String = { secrets.redact($0) }
        let progress = ProgressSink(renderer: makeRenderer(), redact: redact)
        for w in secrets.warnings { progress.warning(w) }
        if job.resources.memory != nil {
            progress.warning("resources.memory cannot be enforced on this host (cgroups are not delegated to the agent); only rlimits apply")
        }
        let jobLog: JobLog
        do {
            jobLog = try JobLog(path: results.directoryPath + "/log.txt", redact: redact)
        } catch {
            results.discard()
            await workspace.remove()
            pod?.close()
            return fail(3, "\(error)")
        }
        for dir in stale { jobLog.note("removed \(dir): the workspace layer of an agent that is gone") }
        for w in image?.warnings ?? [] { progress.warning(w) }
        var prepared = PreparedJob(admitted: admitted, secrets: secrets, seccomp: seccomp, results: results,
                                   workspace: workspace, progress: progress, jobLog: jobLog, startedAt: startedAt, image: image,
                                   imageUser: imageUser)
        prepared.pod = pod
        prepared.services = services
        if let pod { jobLog.note("job network: one pod (\(pod.configuration.network.rawValue)\(pod.networkStack.map { " through " + $0 } ?? ""))") }
        return .success(prepared)
    }
}
