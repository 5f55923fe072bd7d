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

    /// Acquires what `step` mounts and returns the plan. Caches use `job.cacheScope`; a locked
    /// cache that must wait calls `onWait` with a message for progress output first. Binds are
    /// checked again (as in `validate`) with the state folder, the agent's home and binary protected.
    /// `workspaceHostPath` is the runner's per-job copy of the workspace, if it made one; binds
    /// under it are allowed, read-write too. On error nothing stays held.
    public func plan(step: StepSpec, stepIndex: Int? = nil, job: JobSpec, allowedBindSources: [String],
                     workspaceHostPath: String?,
                     onWait: @escaping @Sendable (String) -> Void = { _ in }) async throws -> MountPlan {
        var plan = MountPlan()
        let index = stepIndex ?? job.steps.firstIndex(of: step) ?? 0
        do {
            for (i, spec) in step.mounts.enumerated() {
                let path = "steps[\(index)].mounts[\(i)]"
                switch spec {
                case .cache(let c):
                    let lease = try await cacheStore.acquire(c, scope: job.cacheScope, onWait: onWait)
                    plan.cacheLeases.append(lease)
                    plan.caches.append(lease.use)
                    plan.mounts.append(.bind(lease.hostPath, c.target, readOnly: c.readOnly))
                case .secret(let s):
                    plan.secrets.append(s)
                case .volume(let name, let target, let ro):
                    let lease = try await volumeStore.acquire(name: name, readOnly: ro)
                    plan.volumeLeases.append(lease)
                    plan.mounts.append(.bind(lease.hostPath, target, readOnly: ro))
                case .bind(let source, let target, let rw):
                    let host = try Self.checkBind(source: source, readWrite: rw, path: path, job: job,
                                                  allowed: allowedBindSources, workspaceCopy: workspaceHostPath,
                                                  protected: [state.root], containing: protectedPaths())
                    plan.mounts.append(.bind(host, target, readOnly: !rw))
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

    /// Paths no bind source may contain: the state folder, the agent's home and its binary.
    /// (A source below the home is fine, e.g. a workspace in it; the home itself is not.)
    public func protectedPaths() -> [String] {
        var paths = [state.root]
        if let home = ProcessInfo.processInfo.environment["HOME"], home.hasPrefix("/"), home != "/" { paths.append(home) }
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { paths.append(exe) }
        return paths
    }

    /// Checks every bind source of the job against the policy before any step runs. Sources
    /// resolve against the job's folder, then `realpath` (so `..` and symlinks cannot lead
    /// out) and must lie under an allowed prefix or the job's workspace. No source may be, contain
    /// or lie below a `protectedPaths` entry (e.g. the state folder) even then. Throws a
    /// `JobValidationError` naming the step and mount.
    public static func validate(job: JobSpec, allowedBindSources: [String], protectedPaths: [String] = []) throws {
        for (si, step) in job.steps.enumerated() {
            for (mi, spec) in step.mounts.enumerated() {
                guard case .bind(let source, _, let rw) = spec else { continue }
                _ = try checkBind(source: source, readWrite: rw, path: "steps[\(si)].mounts[\(mi)]", job: job,
                                  allowed: allowedBindSources, workspaceCopy: nil, protected: protectedPaths, containing: protectedPaths)
            }
        }
    }

    /// Resolves and checks one bind source; returns the host path to bind.
    static func checkBind(source: String, readWrite: Bool, path: String, job: JobSpec, allowed: [String],
                          workspaceCopy: String?, protected: [String], containing: [String]) throws -> String {
        let joined = source.hasPrefix("/") ? source : job.baseDirectory + "/" + source
        guard let real = realPath(joined) else {
            throw JobValidationError(path: path, message: "bind source \"\(source)\" does not exist")
        }
        let workspace = job.workspace.flatMap(realPath)
        let copy = workspaceCopy.flatMap(realPath)
        let prefixes = allowed.compactMap(realPath)
        let inWorkspace = workspace.map { isUnder(real, $0) } ?? false
        let inCopy = copy.map { isUnder(real, $0) } ?? false
        guard inWorkspace || inCopy || prefixes.contains(where: { isUnder(real, $0) }) else {
            throw JobValidationError(path: path, message: "bind source \"\(source)\" is outside the policy's allowed bind sources")
        }
        for p in protected.compactMap(realPath) where isUnder(real, p) {
            throw JobValidationError(path: path, message: "bind source \"\(source)\" would expose the agent's own files (\(p))")
        }
        for p in containing.compactMap(realPath) where isUnder(p, real) {
            throw JobValidationError(path: path, message: "bind source \"\(source)\" would expose the agent's own files (\(p))")
        }
        if readWrite && inWorkspace && !inCopy && !prefixes.contains(where: { isUnder(real, $0) }) {
            // The runner promises never to modify the job's source; /workspace is its writable view.
            throw JobValidationError(path: path, message: "bind source \"\(source)\" is in the job's source folder and cannot be bound rw (write to /workspace instead)")
        }
        return real
    }

    static func realPath(_ path: String) -> String? {
        guard let r = realpath(path, nil) else { return nil }
        defer { free(r) }
        return String(cString: r)
    }

    /// Whether `path` is `prefix` or below it (component-wise, so /data2 is not under /data).
    static func isUnder(_ path: String, _ prefix: String) -> Bool {
        if prefix == "/" { return true }
        return path == prefix || path.hasPrefix(prefix.hasSuffix("/") ? prefix : prefix + "/")
    }
}
