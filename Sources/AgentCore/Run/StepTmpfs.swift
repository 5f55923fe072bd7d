import AgentSupport
import Sandbox
import SandboxPolicy

/// Sizes for every tmpfs of a step. A tmpfs mounted without `size=` may grow to half of
/// the host's RAM, so one step could exhaust memory for every job on the agent; each one
/// therefore gets the policy's `tmpfs.defaultSizeBytes` unless the job named a size
/// (admission has already refused a size above `tmpfs.maxSizeBytes`).
enum StepTmpfs {
    /// `mounts` with every size-less tmpfs given `limits.defaultSizeBytes`.
    static func sized(_ mounts: [Mount], _ limits: AgentPolicy.TmpfsLimits) -> [Mount] {
        mounts.map { mount in
            guard case .tmpfs(nil, let mode) = mount.kind else { return mount }
            return Mount(target: mount.target, kind: .tmpfs(size: limits.defaultSizeBytes, mode: mode))
        }
    }

    /// The tmpfs every step gets: `/tmp`, `/dev/shm` (the shim's own `/dev/shm` has no size,
    /// so a sized one is mounted over it), and `/root` (HOME) when the step runs as root.
    static func base(uid: UInt32, _ limits: AgentPolicy.TmpfsLimits) -> [Mount] {
        var mounts: [Mount] = [
            .tmpfs("/tmp", size: limits.defaultSizeBytes, mode: 0o1777),
            .tmpfs("/dev/shm", size: limits.defaultSizeBytes, mode: 0o1777),
        ]
        if uid == 0 { mounts.append(.tmpfs("/root", size: limits.defaultSizeBytes, mode: 0o700)) }
        return mounts
    }
}
