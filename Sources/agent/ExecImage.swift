import AgentCore
import AgentSupport
import ArgumentParser
import FoundationEssentials
import Images
import Sandbox
import SandboxPolicy

/// `agent exec --image REF`: the policy's image rules (as for jobs), then the image pulled
/// if needed, its snapshots as the root's lower layers and its config applied: Env under
/// `--env`, WorkingDir unless `--workdir`, Entrypoint + Cmd when no command is given.
enum ExecImage {
    /// The image's lease, held until the process exits (the container uses its snapshots).
    nonisolated(unsafe) static var held: ImageLease?

    struct Refused: Error, CustomStringConvertible {
        var description: String
    }

    static func apply(_ text: String, pull: String, stateDir: String?, policy: AgentPolicy, workdirGiven: Bool,
                      userGiven: Bool, idMapping: ContainerConfiguration.IDMapping, to c: inout ContainerConfiguration) throws {
        guard let pullPolicy = PullPolicy(rawValue: pull) else {
            throw ValidationError("--pull must be if-not-present, always or never, not '\(pull)'")
        }
        let source: ImageSource
        do { source = try ImageSource.parse(text) } catch { throw ValidationError("--image: \(error)") }
        if let why = ImageGate.refusal(source, policy: policy.images) { throw Refused(description: "--image: " + why) }
        let state = try StateDirectory.resolve(explicit: stateDir)
        try state.create()
        var store = try ImageStore(stateDirectory: state.root, insecureRegistries: policy.images.insecureRegistries)
        store.storeMaxBytes = Int64(clamping: policy.images.storeMaxBytes)
        store.credentials = try RegistryCredentials.load(environment: ProcessInfo.processInfo.environment)
        // The snapshots of the container's id mapping: the layers' owners in subordinate mode.
        store.owners = OwnerRanges.forSteps(idMapping)
        let image: PreparedImage
        switch source {
        case .registry: image = try store.prepare(source, pull: pullPolicy)
        case .ociLayout(let p, _), .ociArchive(let p), .dockerArchive(let p):
            // The operator's own path (exec is the operator's command), imported as named.
            let path = p.hasPrefix("/") ? p : FileManager.default.currentDirectoryPath + "/" + p
            image = try store.prepareLocal(source, opened: path, as: source.description)
        }
        held = image.lease
        // An owner outside the subordinate ranges, a skipped device node: said, never fatal.
        for w in image.warnings { printToStandardError("agent: warning: \(w)\n") }
        c.rootfs = .layers(image.layers.map { HostPath($0) })
        for kv in image.config.env {
            guard let eq = kv.firstIndex(of: "=") else { continue }
            c.environment.removeAll { $0.hasPrefix(kv[...eq]) }
            c.environment.append(kv)
        }
        // The image's User unless --user: names resolved in the image's own /etc/passwd.
        if !userGiven {
            do { (c.uid, c.gid) = try ImageUser.resolve(image) ?? (0, 0) } catch { throw Refused(description: "--image: \(error)") }
        }
        if !workdirGiven, let w = image.config.workingDir { c.workingDirectory = w }
        if c.command.isEmpty {
            c.command = image.config.entrypoint + image.config.cmd
            guard !c.command.isEmpty else { throw ValidationError("\(text) has no Entrypoint or Cmd: give a command after --") }
        }
    }
}
