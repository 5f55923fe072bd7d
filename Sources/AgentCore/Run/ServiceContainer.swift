import AgentSupport
import FoundationEssentials
import Glibc
import Images
import Sandbox
import SandboxPolicy

/// A service as prepared for its container: the admitted root, the pulled image and the
/// user it runs as.
struct PreparedService: Sendable {
    let index: Int
    var spec: ServiceSpec
    /// The admitted folder of `{"rootfs": DIR}`.
    var rootfs: HostPath? = nil
    var image: PreparedImage? = nil
    /// The image's `User` as ids, when the entry names no `user`.
    var imageUser: (uid: UInt32, gid: UInt32)? = nil

    /// Ports the service claims in the job's network: its `{"tcp": PORT}` health check and
    /// the image's exposed TCP ports.
    var claimedPorts: [UInt16] {
        var ports = exposedTCPPorts
        if case .tcp(let p) = spec.healthcheck, !ports.contains(p) { ports.insert(p, at: 0) }
        return ports
    }

    /// `ExposedPorts` of the image that are TCP (`5432/tcp`, or a bare `5432`), in order.
    var exposedTCPPorts: [UInt16] {
        (image?.config.exposedPorts ?? []).compactMap { key in
            let parts = key.split(separator: "/")
            guard let first = parts.first, parts.count == 1 || parts[1].lowercased() == "tcp" else { return nil }
            return UInt16(first)
        }
    }

    var uid: UInt32 { spec.userGiven ? spec.uid : imageUser?.uid ?? 0 }
    var gid: UInt32 { spec.userGiven ? spec.gid : imageUser?.gid ?? 0 }

    /// Docker's rule: `entrypoint` given replaces the image's and drops its `Cmd`; `command`
    /// replaces the `Cmd`. Empty when neither the entry nor the image names a program.
    var argv: [String] {
        let config = image?.config
        let entrypoint = spec.entrypoint ?? config?.entrypoint ?? []
        let cmd = spec.command ?? (spec.entrypoint == nil ? config?.cmd ?? [] : [])
        return entrypoint + cmd
    }

    /// What the service waits for, for status.json and messages.
    var healthDescription: String {
        switch spec.healthcheck {
        case .tcp(let p): return "tcp \(p)"
        case .cmd: return "cmd"
        case nil:
            if !exposedTCPPorts.isEmpty { return "exposed ports " + exposedTCPPorts.map(String.init).joined(separator: ", ") }
            if imageHealthcheck != nil { return "image healthcheck" }
            return "none"
        }
    }

    /// The image's Docker `HEALTHCHECK` as an argv (CMD, or CMD-SHELL through /bin/sh -c); nil for none.
    var imageHealthcheck: [String]? {
        guard let test = image?.config.healthcheckTest, let kind = test.first else { return nil }
        switch kind {
        case "CMD" where test.count > 1: return Array(test.dropFirst())
        case "CMD-SHELL" where test.count > 1: return ["/bin/sh", "-c", test[1]]
        default: return nil  // NONE, or an empty test
        }
    }
}

/// Builds the container configuration of a service and of its health-check commands:
/// the same sandbox as a step (seccomp, capabilities, rlimits, the policy's tmpfs sizes),
/// in the job's pod, without `/workspace` and without caches.
struct ServiceContainerFactory: Sendable {
    let job: JobSpec
    let options: RunnerOptions
    let seccomp: SeccompPolicy
    let pod: Pod
    let hostAliases: [String]
    /// The job's layer folder: a writable upper per image or rootfs service lives there,
    /// on disk (an upper on the container's staging tmpfs would have no size bound).
    let layerRoot: String

    /// The environment: a default PATH and HOME, the image's Env, the job's `env` (as
    /// GitLab passes job variables to services), the entry's `variables`, then the secrets
    /// it names as env. Never another service's or a step's secrets.
    func environment(_ s: PreparedService, secretEnv: [String: String]) -> [String] {
        var env: [String: String] = [
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": s.uid == 0 ? "/root" : "/tmp",
            "CI": "true",
            "AGENT_JOB_ID": job.id,
            "AGENT_SERVICE": s.spec.alias,
        ]
        for kv in s.image?.config.env ?? [] {
            guard let eq = kv.firstIndex(of: "=") else { continue }
            env[String(kv[..<eq])] = String(kv[kv.index(after: eq)...])
        }
        for (k, v) in job.env { env[k] = v }
        for (k, v) in s.spec.variables { env[k] = v }
        for (k, v) in secretEnv { env[k] = v }
        return env.keys.sorted().map { "\($0)=\(env[$0]!)" }
    }

    /// The service's root: the host's binaries (read-only, writable tmpfs at /tmp, /dev/shm
    /// and HOME), or its image/folder under a writable upper of its own on disk, as a Docker
    /// container's root is writable.
    func root(_ s: PreparedService, writable: Bool, into c: inout ContainerConfiguration) throws {
        let lower: [HostPath]
        switch s.spec.name {
        case .host:
            c.rootfs = .host
            c.readOnlyRoot = true
            return
        case .rootfs(let dir): lower = [s.rootfs ?? HostPath(dir)]
        case .image: lower = (s.image?.layers ?? []).map { HostPath($0) }
        }
        guard writable else {
            c.rootfs = lower.count == 1 ? .directory(lower[0]) : .layers(lower)
            c.readOnlyRoot = true
            return
        }
        let dir = layerRoot + "/service-\(s.index)"
        for d in [dir, dir + "/upper", dir + "/work"] where mkdir(d, 0o755) != 0 && errno != EEXIST {
            throw SandboxError(stage: "service root layer", errno: errno, detail: d)
        }
        c.rootfs = .layersWithUpper(lower: lower, upper: HostPath(dir + "/upper"), work: HostPath(dir + "/work"))
        c.readOnlyRoot = false
    }

    func configuration(_ s: PreparedService, command: [String], mounts: [Mount], secretEnv: [String: String],
                       writable: Bool) throws -> ContainerConfiguration {
        var c = ContainerConfiguration(command: command)
        try root(s, writable: writable, into: &c)
        c.mounts = StepTmpfs.base(uid: s.uid, options.policy.tmpfs) + mounts
        c.environment = environment(s, secretEnv: secretEnv)
        let wd = s.image?.config.workingDir ?? ""
        c.workingDirectory = wd.isEmpty ? "/" : wd
        c.uid = s.uid
        c.gid = s.gid
        c.hostname = s.spec.alias
        c.network = pod.configuration.network
        c.pod = pod
        c.hostAliases = hostAliases
        c.rlimits = job.resources.containerLimits(
            processes: min(job.resources.pids ?? options.policy.defaultPids, options.policy.defaultPids))
        c.capabilities = options.policy.capabilities
        c.seccomp = seccomp
        c.killGracePeriod = job.servicesStopGrace
        c.stdin = .null
        c.output = .pipe
        c.allowRoot = options.allowRoot
        return c
    }
}
