import AgentSupport
import Dockerfile
import FoundationEssentials
import Glibc
import Images
import Sandbox

extension BuildExecutor {
    /// The argv of a RUN: exec form as is; shell form behind SHELL, heredoc bodies given to
    /// the shell after the command line (the shell reads them as here-documents), or, for
    /// a RUN that is only a heredoc, the body as the script.
    func runArgv(_ r: RunCommand, shell: [String]) -> [String] {
        let c = r.command
        guard c.prependsShell else { return c.arguments }
        let line = c.arguments.joined(separator: " ")
        guard !c.heredocs.isEmpty else { return shell + [line] }
        if c.heredocs.count == 1, line.trimmingWhitespace().hasPrefix("<<"),
           !line.contains(where: { $0 == "|" || $0 == ">" || $0 == ";" || $0 == "&" }),
           line.split(separator: " ").count == 1 {
            return shell + [c.heredocs[0].text]
        }
        var script = line + "\n"
        for h in c.heredocs { script += h.content + (h.content.hasSuffix("\n") || h.content.isEmpty ? "" : "\n") + h.name + "\n" }
        return shell + [script]
    }

    /// RUN: a cache hit adds the stored layer; a miss runs the command in the sandbox on an
    /// overlay of the stage's snapshots with an upper folder of its own, then turns that
    /// folder into the new layer.
    func runInstruction(_ inst: Instruction, _ r: RunCommand, into s: inout StageResult, file: Dockerfile,
                        stageIndex: Int, inputs: [Int: StageResult], vertex v: BuildProgress.Vertex) async throws(BuildError) {
        let argv = runArgv(r, shell: s.shell)
        var env = s.env
        for (k, val) in s.args.pairs where !env.contains(k) { env[k] = val }
        let network = Self.runNetwork(r.network, policy: policy)
        let user = s.config.user ?? ""

        var key = BuildCacheKey(parent: s.key, kind: "RUN")
        key.add("argv", argv)
        key.add("env", env.environment)
        key.add("user", [user])
        key.add("workdir", [s.workdir])
        key.add("network", [network.rawValue])
        for m in r.mounts {
            var spec = [m.kind.rawValue, m.target ?? "", m.effectiveTarget ?? "", m.readOnly ? "ro" : "rw"]
            switch m.kind {
            case .cache: spec += [m.cacheID ?? "", m.sharing?.rawValue ?? "shared", String(m.mode ?? 0o755), String(m.uid ?? 0), String(m.gid ?? 0)]
            case .secret: spec += [m.secretID ?? "", m.env ?? "", m.required ? "required" : "", String(m.mode ?? 0o400)]
            case .tmpfs: spec += [String(m.sizeLimit ?? 0)]
            case .bind:
                spec += [m.source ?? "", m.from ?? "context"]
                if let f = m.from, let i = StageGraph.fromIndex(f, in: file, stage: stageIndex), let dep = inputs[i] {
                    spec.append(dep.key.description)
                }
            case .ssh: break
            }
            key.add("mount", spec)
        }
        let k = key.finish()
        let createdBy = "RUN " + (r.command.prependsShell ? argv.joined(separator: " ") : "[" + argv.joined(separator: ", ") + "]") + " # buildkit"
        if !request.noCache, let e = cache.lookup(k) {
            progress.cached(v)
            counters.addCached()
            try record(e.written, createdBy: e.createdBy, key: k, into: &s)
            return
        }
        guard !s.snapshots.isEmpty else {
            throw BuildError(.badInput, stage: "RUN", located(inst, "RUN on an empty image (FROM scratch has no shell; COPY a filesystem first)"))
        }
        await slots.acquire()
        let layer: WrittenLayer
        do {
            layer = try await runContainer(inst, r, argv: argv, env: env, network: network, state: s, file: file,
                                           stageIndex: stageIndex, inputs: inputs, vertex: v)
        } catch {
            await slots.release()
            throw error
        }
        await slots.release()
        counters.addRan()
        let entry = BuildCacheEntry(written: layer, createdBy: redact(createdBy))
        try cache.store(k, entry)
        try record(layer, createdBy: entry.createdBy, key: k, into: &s)
        progress.done(v)
    }

    private func runContainer(_ inst: Instruction, _ r: RunCommand, argv: [String], env: Variables,
                              network: ContainerConfiguration.Network, state s: StageResult, file: Dockerfile,
                              stageIndex: Int, inputs: [Int: StageResult], vertex v: BuildProgress.Vertex) async throws(BuildError) -> WrittenLayer {
        let dir = work + "/run-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let upper = dir + "/upper", workdir = dir + "/work"
        for d in [dir, upper, workdir] where mkdir(d, 0o755) != 0 {
            throw BuildError(.agent, stage: "RUN", "cannot create \(d): \(String(cString: strerror(errno)))")
        }
        defer { Task.detached { await RootlessRemove.remove(dir) } }
        let lower = try SourceTree(layers: s.snapshots)
        // The working folder is made in the upper layer when the image lacks it (as
        // BuildKit's WORKDIR does); it is then part of the layer.
        if (try? lower.lookup(s.workdir, what: "WORKDIR")) ?? nil == nil {
            _ = try? FileManager.default.createDirectory(atPath: upper + s.workdir, withIntermediateDirectories: true)
        }
        var plan = try await runMounts(inst, r, state: s, file: file, stageIndex: stageIndex, inputs: inputs)
        defer { plan.leases.forEach { $0.release() } }

        var c = ContainerConfiguration(command: argv)
        c.rootfs = .layersWithUpper(lower: s.snapshots.map { HostPath($0) }, upper: HostPath(upper), work: HostPath(workdir))
        c.readOnlyRoot = false
        c.mounts = plan.mounts
        var environment = env
        for (k, val) in plan.env { environment[k] = val }
        if !environment.contains("PATH") { environment["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" }
        c.environment = environment.environment
        c.workingDirectory = s.workdir
        if let u = s.config.user, !u.isEmpty {
            do { (c.uid, c.gid) = try ImageUser.resolve(u, layers: s.snapshots, image: "stage") } catch {
                throw BuildError(.badInput, stage: "RUN", located(inst, "USER \(u): \(error.problem)"))
            }
        }
        c.hostname = "buildkitsandbox"
        c.network = network
        if network == .outbound { c.outbound = ExecPolicyGate.outbound(policy.sandbox.network) }
        var limits = ResourceLimit.defaults
        limits.append(ResourceLimit(.nproc, policy.defaultPids))
        c.rlimits = limits
        c.capabilities = policy.capabilities
        c.seccomp = seccomp
        c.stdin = .null
        c.output = .pipe
        c.allowRoot = allowRoot

        let container: RunningContainer
        do { container = try await RunningContainer.start(c) } catch {
            throw BuildError(.agent, stage: "RUN", located(inst, "RUN: \(redact("\(error)"))"))
        }
        let disk = DiskGuard(path: state.root, reserveBytes: policy.minFreeDiskBytes).watch(container)
        let result = await withTaskCancellationHandler {
            await pump(container, vertex: v)
        } onCancel: {
            container.terminate(grace: .seconds(2))
        }
        disk.cancel()
        let diskBreach = await disk.value
        if Task.isCancelled { throw BuildError(.cancelled, stage: "RUN", "cancelled") }
        let redacted = redact(inst.original)
        let display = redacted.count > 120 ? String(redacted.prefix(120)) + "..." : redacted
        if let diskBreach {
            let m = located(inst, "\(display): \(diskBreach)")
            progress.failed(v, m)
            throw BuildError(.runFailed, stage: "RUN", m)
        }
        switch result.status {
        case .exited(0): break
        case .exited(let code):
            let m = located(inst, "\(display): exit code \(code)")
            progress.failed(v, m)
            throw BuildError(.runFailed, stage: "RUN", m)
        case .signaled(let sig):
            let m = located(inst, "\(display): killed by signal \(sig)")
            progress.failed(v, m)
            throw BuildError(.runFailed, stage: "RUN", m)
        }
        BuildLayerCapture.removeMountStubs(upper: upper, targets: plan.targets + ["dev", "proc", "sys"], lower: lower)
        var writer = LayerWriter(store: store.content)
        writer.options.compression = request.zstd ? .zstd : .gzip
        writer.options.sourceDateEpoch = request.sourceDateEpoch
        let hold = try store.holdPruneForBuild()
        defer { hold.end() }
        let layer = try await BuildLayerCapture(workDirectory: dir, seccomp: seccomp, allowRoot: allowRoot)
            .capture(upper: upper, writer: writer)
        try leases.list(blob: layer.descriptor.digest)
        return layer
    }

    /// Streams the RUN's output, redacted, into progress lines; returns its result.
    private func pump(_ container: RunningContainer, vertex v: BuildProgress.Vertex) async -> ContainerResult {
        var redactors: [OutputChunk.Stream: Redactor] = [.stdout: Redactor(matcher), .stderr: Redactor(matcher)]
        var pending: [OutputChunk.Stream: [UInt8]] = [.stdout: [], .stderr: []]
        func lines(_ bytes: [UInt8], _ stream: OutputChunk.Stream, final: Bool) {
            var buf = pending[stream]! + bytes
            while let nl = buf.firstIndex(of: 10) {
                progress.log(v, String(decoding: buf[..<nl], as: UTF8.self))
                buf.removeSubrange(...nl)
            }
            if final && !buf.isEmpty { progress.log(v, String(decoding: buf, as: UTF8.self)); buf = [] }
            pending[stream] = buf
        }
        for await chunk in container.output {
            lines(redactors[chunk.stream]!.process(chunk.bytes), chunk.stream, final: false)
        }
        for stream in [OutputChunk.Stream.stdout, .stderr] {
            lines(redactors[stream]!.flush(), stream, final: true)
        }
        return await container.wait()
    }
}

extension BuildCacheEntry {
    init(written l: WrittenLayer, createdBy: String) {
        self.init(layerDigest: l.descriptor.digest.description, layerSize: l.descriptor.size, layerMediaType: l.descriptor.mediaType,
                  diffID: l.diffID.description, createdBy: createdBy, uncompressedSize: l.uncompressedSize, entries: l.entries)
    }

    /// The stored layer as the commit takes it (nil: the instruction changed nothing).
    var written: WrittenLayer? {
        guard let d = layerDigest.flatMap(Digest.init), let diff = diffID.flatMap(Digest.init) else { return nil }
        return WrittenLayer(descriptor: Descriptor(mediaType: layerMediaType ?? LayerCompression.gzip.mediaType, digest: d, size: layerSize ?? 0),
                            diffID: diff, uncompressedSize: uncompressedSize ?? 0, entries: entries ?? 1)
    }
}

extension BuildExecutor {
    /// The network of `RUN --network=MODE` (preflight has checked the policy allows it):
    /// `none` (the default: loopback only); `default` the agent's outbound stack when the
    /// policy allows outbound steps (slirp4netns, the host fenced off), else the host's
    /// namespace; `host` the host's namespace.
    static func runNetwork(_ mode: NetworkMode?, policy: AgentPolicy) -> ContainerConfiguration.Network {
        switch mode {
        case nil, .some(.none): return .none
        case .some(.default): return policy.sandbox.allowOutboundNetwork ? .outbound : .host
        case .some(.host): return .host
        }
    }
}
