import AgentSupport
import FoundationEssentials
import Glibc
import Sandbox

/// A step's mounts, ready for `ContainerConfiguration.mounts`, and what holds them.
public struct MountPlan: Sendable {
    /// Cache, volume, bind and tmpfs mounts, in the step's order.
    public var mounts: [Mount] = []
    /// Secret mounts, left to the runner (it owns secret values).
    public var secrets: [MountSpec.Secret] = []
    /// Held caches; released by `release()`.
    public var cacheLeases: [CacheLease] = []
    /// Held volumes; released by `release()`.
    public var volumeLeases: [VolumeLease] = []
    /// status.json entries for the caches, in the step's order.
    public var caches: [CacheUse] = []

    public init() {}

    /// Releases every cache and volume. Call when the step's container has exited.
    public func release() {
        cacheLeases.forEach { $0.release() }
        volumeLeases.forEach { $0.release() }
    }
}

/// Turns a step's `MountSpec`s into sandbox mounts, holding the caches and volumes.
public struct MountPlanner: Sendable {
    public let state: StateDirectory
    public var cacheStore: CacheStore { CacheStore(state: state) }
    public var volumeStore: VolumeStore { VolumeStore(state: state) }

    public init(state: StateDirectory) {
        self.state = state
    }

    /// Acquires what `step` mounts and returns the plan. Caches and volumes use `job.cacheScope`; a locked
    /// cache that must wait calls `onWait` with a message for progress output first. Bind
    /// sources come from `binds`, the admitted descriptors (`Admission`), never from the
    /// job's strings. On error nothing stays held.
    public func plan(step: StepSpec, stepIndex: Int, job: JobSpec, binds: [MountIndex: AdmittedPath],
                     onWait: @escaping @Sendable (String) -> Void = { _ in }) async throws -> MountPlan {
        var plan = MountPlan()
        do {
            for (i, spec) in step.mounts.enumerated() {
                switch spec {
                case .cache(let c):
                    let lease = try await cacheStore.acquire(c, scope: job.cacheScope, onWait: onWait)
                    plan.cacheLeases.append(lease)
                    plan.caches.append(lease.use)
                    plan.mounts.append(.bind(lease.hostPath, c.target, readOnly: c.readOnly))
                case .secret(let s):
                    plan.secrets.append(s)
                case .volume(let name, let target, let ro):
                    let lease = try await volumeStore.acquire(name: name, scope: job.cacheScope, readOnly: ro)
                    plan.volumeLeases.append(lease)
                    plan.mounts.append(.bind(lease.hostPath, target, readOnly: ro))
                case .bind(_, let target, let rw):
                    guard let source = binds[MountIndex(step: stepIndex, mount: i)] else {
                        // Admission opens every bind; a missing one is a runner defect.
                        throw JobValidationError(path: "steps[\(stepIndex)].mounts[\(i)]", message: "bind source was not admitted")
                    }
                    plan.mounts.append(.bind(source.host, target, readOnly: !rw))
                case .tmpfs(let target, let size, let mode):
                    plan.mounts.append(.tmpfs(target, size: size, mode: mode))
                }
            }
            for spec in step.tmpfs {
                if case .tmpfs(let target, let size, let mode) = spec {
                    plan.mounts.append(.tmpfs(target, size: size, mode: mode))
                }
            }
        } catch {
            plan.release()
            throw error
        }
        return plan
    }

    /// `realpath(3)` of an agent-owned path (the cache store's folders), or nil.
    static func realPath(_ path: String) -> String? {
        guard let r = realpath(path, nil) else { return nil }
        defer { free(r) }
        return String(cString: r)
    }
}
