import CAgentSandbox
import AgentSupport
import FoundationEssentials
import Glibc

/// Turns the shim's `{stage, op, errno}` record into a `SandboxError` that names the step.
enum ShimFailure {
    static func error(stage: Int32, op: Int32, errno err: Int32, ops: [SetupOp], configuration c: ContainerConfiguration) -> SandboxError {
        let opAt: SetupOp? = op >= 0 && Int(op) < ops.count ? ops[Int(op)] : nil
        switch UInt32(bitPattern: stage) {
        case AGENT_STAGE_SYNC.rawValue: return SandboxError(stage: "sync", errno: err)
        case AGENT_STAGE_STDIO.rawValue: return SandboxError(stage: "stdio", errno: err)
        case AGENT_STAGE_INIT_IDS.rawValue: return SandboxError(stage: "setresuid (init)", errno: err)
        case AGENT_STAGE_HOSTNAME.rawValue: return SandboxError(stage: "sethostname", errno: err, detail: c.hostname)
        case AGENT_STAGE_PRIVATE.rawValue: return SandboxError(stage: "mount --make-rprivate /", errno: err)
        case AGENT_STAGE_OP_SOURCE.rawValue:
            // ESTALE comes from the shim's identity check: the admitted folder was replaced.
            let changed = err == ESTALE ? ", which changed after the job was admitted" : ""
            let what = opAt?.kind == .overlay
                ? "(overlay of " + (opAt?.layers.map { "\($0.role) \($0.path.path)" }.joined(separator: ", ") ?? "") + changed + ")"
                : "(bind source \(opAt?.source ?? "?")\(changed))"
            return SandboxError(stage: opAt?.label ?? "mount source", errno: err, detail: what)
        case AGENT_STAGE_STAGING.rawValue: return SandboxError(stage: "staging tmpfs", errno: err)
        case AGENT_STAGE_ROOTFS.rawValue:
            if case .directory(let dir) = c.rootfs {
                let changed = err == ESTALE ? ", which changed after the job was admitted" : ""
                return SandboxError(stage: "rootfs", errno: err, detail: "(directory \(dir.path)\(changed))")
            }
            if case .layers(let layers) = c.rootfs {
                return SandboxError(stage: "rootfs", errno: err, detail: "(image layers \(layers.map(\.path).joined(separator: ", ")))")
            }
            if case .layersWithUpper(let lower, let upper, _) = c.rootfs {
                return SandboxError(stage: "rootfs", errno: err,
                                    detail: "(image layers \(lower.map(\.path).joined(separator: ", ")) under upper \(upper.path))")
            }
            return SandboxError(stage: "rootfs", errno: err)
        case AGENT_STAGE_OP.rawValue:
            let why = err == ELOOP ? "(the target path contains a symlink)" : nil
            return SandboxError(stage: opAt?.label ?? "mount", errno: err, detail: why)
        case AGENT_STAGE_DEVNULL.rawValue: return SandboxError(stage: "host /dev/null", errno: err, detail: "(must be the character device 1:3)")
        case AGENT_STAGE_LOOPBACK.rawValue: return SandboxError(stage: "loopback", errno: err)
        case AGENT_STAGE_PIVOT_ROOT.rawValue: return SandboxError(stage: "pivot_root", errno: err)
        case AGENT_STAGE_UMOUNT_OLD.rawValue: return SandboxError(stage: "umount old root", errno: err)
        case AGENT_STAGE_REMOUNT_RO.rawValue: return SandboxError(stage: "remount / read-only", errno: err)
        case AGENT_STAGE_SIGNALS.rawValue: return SandboxError(stage: "signalfd", errno: err)
        case AGENT_STAGE_FORK.rawValue: return SandboxError(stage: "fork command", errno: err)
        case AGENT_STAGE_SETSID.rawValue: return SandboxError(stage: "setsid", errno: err)
        case AGENT_STAGE_RLIMIT.rawValue:
            let name = op >= 0 && Int(op) < c.rlimits.count ? c.rlimits[Int(op)].resource.rawValue : "?"
            return SandboxError(stage: "setrlimit", errno: err, detail: name)
        case AGENT_STAGE_CHDIR.rawValue: return SandboxError(stage: "chdir", errno: err, detail: c.workingDirectory)
        case AGENT_STAGE_SETGROUPS.rawValue: return SandboxError(stage: "setgroups", errno: err)
        case AGENT_STAGE_SETRESGID.rawValue: return SandboxError(stage: "setresgid", errno: err, detail: "\(c.gid)")
        case AGENT_STAGE_SETRESUID.rawValue: return SandboxError(stage: "setresuid", errno: err, detail: "\(c.uid)")
        case AGENT_STAGE_CAPBSET.rawValue: return SandboxError(stage: "capabilities (bounding set)", errno: err, detail: "cap \(op)")
        case AGENT_STAGE_CAPSET.rawValue: return SandboxError(stage: "capset", errno: err)
        case AGENT_STAGE_NO_NEW_PRIVS.rawValue: return SandboxError(stage: "no_new_privs", errno: err)
        case AGENT_STAGE_SECCOMP.rawValue: return SandboxError(stage: "seccomp", errno: err)
        case AGENT_STAGE_EXEC.rawValue: return SandboxError(stage: "exec", errno: err, detail: c.command.first)
        case AGENT_STAGE_DUMPABLE.rawValue: return SandboxError(stage: "prctl dumpable", errno: err)
        case AGENT_STAGE_NESTED_USERNS.rawValue: return SandboxError(stage: "nested user namespace", errno: err)
        case AGENT_STAGE_NESTED_MAPS.rawValue: return SandboxError(stage: "nested uid_map/gid_map", errno: err)
        case AGENT_STAGE_INIT_EXEC.rawValue: return SandboxError(stage: "agent-init", errno: err, detail: "(exec)")
        case AGENT_STAGE_INIT_PLAN.rawValue: return SandboxError(stage: "agent-init", errno: err, detail: "(plan)")
        case AGENT_STAGE_ROUTES.rawValue:
            let routes = c.outbound.routes(hostAddresses: [])
            let what = op >= 0 && Int(op) < routes.count ? "(route \(op) of the outbound network's fences)" : nil
            return SandboxError(stage: "network routes", errno: err, detail: what)
        case AGENT_STAGE_JOIN_USERNS.rawValue: return SandboxError(stage: "join the job's user namespace", errno: err)
        case AGENT_STAGE_JOIN_NETNS.rawValue: return SandboxError(stage: "join the job's network namespace", errno: err)
        case AGENT_STAGE_JOIN_UNSHARE.rawValue: return SandboxError(stage: "unshare (in the job's network)", errno: err)
        case AGENT_STAGE_JOIN_CLONE.rawValue: return SandboxError(stage: "clone (in the job's network)", errno: err)
        default: return SandboxError(stage: "stage \(stage)", errno: err)
        }
    }
}
