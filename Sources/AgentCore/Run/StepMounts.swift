import AgentSupport
import FoundationEssentials
import Glibc
import Sandbox
import SandboxPolicy

/// The mounts one step gets besides `/workspace`, `/tmp` and HOME.
struct StepMountPlan {
    var mounts: [Mount] = []
    var secretEnv: [String: String] = [:]
    var caches: [CacheUse] = []
    var plan: MountPlan?

    func release() { plan?.release() }
}

extension JobRunner {
    /// Caches, volumes, binds and tmpfs from the step's `mounts` (the cache store may make
    /// the step wait for a `locked` cache; the wait shows in progress), and secrets as files
    /// on a tmpfs private to the container or as env.
    func planMounts(step: StepSpec, index: Int, job: AdmittedJob, secrets: JobSecrets, progress: ProgressSink) async throws -> StepMountPlan {
        let planner = MountPlanner(state: StateDirectory(root: options.stateDirectory))
        let planned = try await planner.plan(
            step: step, stepIndex: index, job: job.spec, binds: job.binds,
            onWait: { reason in progress.send(.stepWaiting(index: index, reason: reason)) })
        var out = StepMountPlan(mounts: planned.mounts, caches: planned.caches, plan: planned)
        for secret in planned.secrets {
            guard let value = secrets.value(for: secret.id) else {
                if secret.required {
                    out.release()
                    throw JobValidationError(path: "steps[\(index)].mounts", message: "required secret \"\(secret.id)\" has no value")
                }
                continue  // BuildKit skips an optional secret that has no source.
            }
            if let env = secret.env {
                out.secretEnv[env] = String(decoding: value, as: UTF8.self)
            } else {
                let target = secret.target ?? "/run/secrets/\(secret.id)"
                out.mounts.append(Mount(target: target, kind: .file(contents: value, mode: secret.mode, uid: secret.uid, gid: secret.gid)))
            }
        }
        return out
    }
}
