import AgentSupport
import CAgentSandbox
import Dockerfile
import FoundationEssentials
import Glibc
import Images
import Sandbox

/// A RUN's `--mount`s as sandbox mounts, and what holds them.
struct RunMountPlan {
    var mounts: [Mount] = []
    /// Secrets given as environment variables (`env=`).
    var env: [(String, String)] = []
    var leases: [CacheLease] = []
    /// Mount targets, relative (their stubs are not part of the layer).
    var targets: [String] = []
}

extension BuildExecutor {
    /// `type=cache` is the agent's cache store (same ids, scopes, sharing and GC as a job's
    /// cache mounts, so a build and a job share `id=go-mod`); `type=secret` a tmpfs file
    /// (mode 0400) that never touches disk; `type=tmpfs` a tmpfs; `type=bind` a read-only
    /// view of the context or of a stage's or image's files.
    func runMounts(_ inst: Instruction, _ r: RunCommand, state s: StageResult, file: Dockerfile,
                   stageIndex: Int, inputs: [Int: StageResult]) async throws(BuildError) -> RunMountPlan {
        var plan = RunMountPlan()
        do throws(BuildError) {
            for m in r.mounts {
                guard let rawTarget = m.effectiveTarget ?? (m.kind == .secret ? nil : m.target) else {
                    if m.kind == .secret, let id = m.secretID, let name = m.env {
                        if let value = request.secrets.value(for: id) { plan.env.append((name, String(decoding: value, as: UTF8.self))) }
                        continue
                    }
                    throw BuildError(.badInput, stage: "RUN", located(inst, "RUN --mount=type=\(m.kind.rawValue): target is required"))
                }
                let target = s.absolute(rawTarget)
                let rel = normalize(target).dropFirst()
                switch m.kind {
                case .cache:
                    var c = MountSpec.Cache(target: target, id: m.cacheID)
                    c.sharing = MountSpec.Sharing(rawValue: m.sharing?.rawValue ?? "shared") ?? .shared
                    c.readOnly = m.readOnly
                    c.mode = m.mode ?? 0o755
                    c.uid = m.uid ?? 0
                    c.gid = m.gid ?? 0
                    let lease: CacheLease
                    do { lease = try await CacheStore(state: state).acquire(c, scope: request.cacheScope) } catch {
                        throw BuildError(.agent, stage: "RUN", located(inst, "cache mount \(target): \(error)"))
                    }
                    plan.leases.append(lease)
                    plan.mounts.append(.bind(lease.hostPath, target, readOnly: c.readOnly))
                case .secret:
                    guard let id = m.secretID else { continue }
                    guard let value = request.secrets.value(for: id) else { continue }  // optional and not given: skipped
                    if let name = m.env { plan.env.append((name, String(decoding: value, as: UTF8.self))) }
                    plan.mounts.append(Mount(target: target, kind: .file(contents: value, mode: m.mode ?? 0o400, uid: m.uid ?? 0, gid: m.gid ?? 0)))
                case .tmpfs:
                    let size = m.sizeLimit.map { UInt64($0) } ?? policy.tmpfs.defaultSizeBytes
                    plan.mounts.append(.tmpfs(target, size: min(size, policy.tmpfs.maxSizeBytes), mode: 0o1777))
                case .bind:
                    plan.mounts.append(try bindMount(inst, m, target: target, file: file, stageIndex: stageIndex, inputs: inputs))
                case .ssh:
                    throw BuildError(.badInput, stage: "RUN", located(inst, "RUN --mount=type=ssh is not supported"))
                }
                plan.targets.append(String(rel))
            }
        } catch {
            plan.leases.forEach { $0.release() }
            throw error
        }
        return plan
    }

    /// A bind: from the context (its `source` opened beneath it by descriptor, never a
    /// path out), or from a stage or image (its snapshot folders, merged read-only).
    private func bindMount(_ inst: Instruction, _ m: RunMount, target: String, file: Dockerfile,
                           stageIndex: Int, inputs: [Int: StageResult]) throws(BuildError) -> Mount {
        let source = m.source ?? "/"
        let rel = normalize(source).dropFirst()
        guard let from = m.from else {
            let fd = agent_resolve_open_beneath(request.contextFD, rel.isEmpty ? "." : String(rel), O_PATH)
            guard fd >= 0 else {
                let why = errno == EXDEV ? "leads out of the build context" : String(cString: strerror(errno))
                throw BuildError(.badInput, stage: "RUN", located(inst, "RUN --mount=type=bind,source=\(source): \(why)"))
            }
            defer { close(fd) }
            guard let host = HostPath(descriptor: fd) else {
                throw BuildError(.agent, stage: "RUN", located(inst, "RUN --mount=type=bind,source=\(source): cannot name the opened source"))
            }
            return .bind(host, target, readOnly: true)
        }
        let layers: [String]
        if let i = StageGraph.fromIndex(from, in: file, stage: stageIndex), let dep = inputs[i] {
            layers = dep.snapshots
        } else {
            layers = try pullBase(from, inst).snapshots
        }
        let tree = try SourceTree(layers: layers)
        guard let node = try tree.lookup(String(rel), what: "RUN --mount") else {
            throw BuildError(.badInput, stage: "RUN", located(inst, "RUN --mount=type=bind,from=\(from),source=\(source): not found"))
        }
        // The folders that merge into the source, as overlay lower layers (top first).
        let dirs = layers.filter { l in
            var st = stat()
            return lstat(l + "/" + rel, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
        }.map { $0 + (rel.isEmpty ? "" : "/" + rel) }
        if !node.isDirectory || dirs.count == 1 {
            let top = layers.first { l in var st = stat(); return lstat(l + "/" + rel, &st) == 0 }!
            return .bind(top + (rel.isEmpty ? "" : "/" + rel), target, readOnly: true)
        }
        return Mount(target: target, kind: .overlay(lower: dirs.map { HostPath($0) }, upper: HostPath(""), work: HostPath("")))
    }
}
