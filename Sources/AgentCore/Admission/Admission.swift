import AgentSupport
import FoundationEssentials
import Glibc
import Sandbox
import SandboxPolicy

/// What the operator grants the jobs of this agent: the policy, the command-line flags and
/// the queue settings. Trusted; the job file is not.
public struct OperatorGrant: Sendable {
    public var policy: AgentPolicy
    /// `--workspace-root` flags, in addition to the policy's `workspaceRoots`.
    public var workspaceRoots: [String] = []
    /// The agent's own folders, which no job may reach.
    public var protected: ProtectedPaths
    /// `--cache-scope`: the only scope the job's caches and volumes live in.
    public var cacheScope: String = ScopeGrant.defaultScope
    /// `--secret` flags; with the policy's `secrets`, the only secret sources.
    public var secretFlags: [SecretSourceFlag] = []
    /// The agent's environment, read only for `--secret ...,env=VAR` flags.
    public var environment: [String: String] = [:]
    /// Where relative `--secret src=` paths resolve.
    public var workingDirectory: String = "/"

    public init(policy: AgentPolicy, workspaceRoots: [String] = [], protected: ProtectedPaths) {
        self.policy = policy
        self.workspaceRoots = workspaceRoots
        self.protected = protected
    }
}

/// Where one mount of one step is in the job (`steps[step].mounts[mount]`).
public struct MountIndex: Hashable, Sendable {
    public var step: Int
    public var mount: Int
    public init(step: Int, mount: Int) {
        self.step = step
        self.mount = mount
    }
}

/// A job as the operator granted it: the parsed spec plus every host path it names, opened
/// once beneath its granted root and held by descriptor. The runner executes only this.
public struct AdmittedJob: Sendable {
    /// The parsed job with its granted cache scope.
    public let spec: JobSpec
    /// The job file as the operator named it (for messages).
    public let file: String
    /// The checked-out source, or nil for an empty workspace.
    public let workspace: AdmittedPath?
    /// The root filesystem folder of `"image": {"rootfs": ...}`.
    public let rootfs: AdmittedPath?
    /// The folder or file of a local image source (`"image": "oci-archive:FILE"` and the like).
    public var localImage: AdmittedPath? = nil
    /// The root filesystem folders of `services[i].name = {"rootfs": ...}`, by service index.
    public var serviceRoots: [Int: AdmittedPath] = [:]
    /// Every bind source, by step and mount.
    public let binds: [MountIndex: AdmittedPath]
    /// The values of the secrets the job may use, from the operator's sources only.
    public let secrets: SecretStore
}

/// The one step between the job parser and the runner (used by `run-job` and `watch`):
/// each job key that names something outside the container is a request, granted here from
/// the operator's side or refused (exit 2) before anything runs, naming the JSON path, the
/// value and the policy key or flag that would allow it.
public enum Admission {
    ///
    /// Order: cache scope, network, image, services, root filesystem, workspace, bind sources, and last the
    /// secrets, so that no secret value is read for a job that is refused.
    public static func admit(_ parsed: JobSpec, file: String, grant: OperatorGrant) throws -> AdmittedJob {
        let policy = grant.policy
        let job = try ScopeGrant.apply(grant.cacheScope, to: parsed, file: file)
        try admitNetwork(job, file: file, policy: policy)
        try ImageGate.admit(job, file: file, policy: policy)
        let localImage = try ImageGate.admitLocal(job, file: file, grant: grant)
        let serviceRoots = try admitServices(job, file: file, grant: grant)
        try admitTmpfs(job, file: file, limits: policy.tmpfs)
        var rootfs: AdmittedPath?
        if case .rootfs(let path) = job.image {
            let g = PathGrant(base: job.baseDirectory, roots: policy.rootfsRoots, rootsKey: "rootfsRoots",
                              howToGrant: "rootfsRoots in the agent policy")
            rootfs = try HostPathGate.open(path, grant: g, protected: grant.protected, kind: .directory,
                                           file: file, jsonPath: "image.rootfs")
        }
        var workspace: AdmittedPath?
        if let path = job.workspace {
            let g = PathGrant(base: job.baseDirectory, roots: policy.workspaceRoots + grant.workspaceRoots,
                              rootsKey: "workspaceRoots", howToGrant: "workspaceRoots in the agent policy, or --workspace-root")
            workspace = try HostPathGate.open(path, grant: g, protected: grant.protected, kind: .directory,
                                              file: file, jsonPath: "workspace")
        }
        let binds = try admitBinds(job, file: file, workspace: workspace, grant: grant)
        try admitBuildSteps(job, file: file, workspace: workspace, policy: policy)
        let secrets = try SecretStore.resolve(
            job: job, cliSecrets: grant.secretFlags, policySecrets: policy.secrets, environment: grant.environment,
            cwd: grant.workingDirectory, maxBytes: Int(policy.maxSecretBytes))
        var admitted = AdmittedJob(spec: job, file: file, workspace: workspace, rootfs: rootfs, binds: binds, secrets: secrets)
        admitted.localImage = localImage
        admitted.serviceRoots = serviceRoots
        return admitted
    }

    /// The job's and every step's `network`: `host` needs `allowHostNetwork`, `outbound`
    /// needs `allowOutboundNetwork` and a host that can give it now (the stack's program,
    /// `/dev/net/tun` usable by the agent's user), so a missing device refuses the job
    /// before any step runs, naming the device and the fix.
    static func admitNetwork(_ job: JobSpec, file: String, policy: AgentPolicy) throws {
        let uses = [("network", job.network)] + job.steps.enumerated().compactMap { i, s in
            s.network.map { ("steps[\(i)].network", $0) }
        }
        for (path, mode) in uses {
            if mode == .host && !policy.allowHostNetwork {
                throw JobValidationError(file: file, path: path,
                                         message: "\"host\" is not allowed by the agent policy (allowHostNetwork: false)")
            }
            if mode == .outbound && !policy.sandbox.allowOutboundNetwork {
                throw JobValidationError(file: file, path: path,
                                         message: "\"outbound\" is not allowed by the agent policy (allowOutboundNetwork: false)")
            }
        }
        // Only a job that runs a step with the outbound network needs the device.
        let outbound = job.steps.contains { ($0.network ?? job.network) == .outbound }
        if outbound {
            do {
                try ExecPolicyGate.outbound(policy.sandbox.network).preflight()
            } catch {
                let path = uses.first { $0.1 == .outbound }?.0 ?? "network"
                throw JobValidationError(file: file, path: path, message: error.message)
            }
        }
    }

    /// Bind sources: beneath the job's folder, the policy's `allowedBindSources`, or the
    /// job's workspace (read-only there: the source is never modified; write to /workspace).
    static func admitBinds(_ job: JobSpec, file: String, workspace: AdmittedPath?,
                           grant: OperatorGrant) throws -> [MountIndex: AdmittedPath] {
        var out: [MountIndex: AdmittedPath] = [:]
        let roots = grant.policy.allowedBindSources + (workspace.map { [$0.host.path] } ?? [])
        let g = PathGrant(base: job.baseDirectory, roots: roots, rootsKey: "allowedBindSources",
                          howToGrant: "allowedBindSources in the agent policy, or a path in the job's workspace")
        for (si, step) in job.steps.enumerated() {
            for (mi, spec) in step.mounts.enumerated() {
                guard case .bind(let source, _, let rw) = spec else { continue }
                let jsonPath = "steps[\(si)].mounts[\(mi)].source"
                let opened = try HostPathGate.open(source, grant: g, protected: grant.protected, kind: .directoryOrFile,
                                                   file: file, jsonPath: jsonPath)
                if rw, let workspace, workspace.contains(opened) {
                    throw JobValidationError(file: file, path: jsonPath, message:
                        "\(jsonQuoted(source)) is in the job's source folder and cannot be bound rw (write to /workspace instead)")
                }
                out[MountIndex(step: si, mount: mi)] = opened
            }
        }
        return out
    }
}
