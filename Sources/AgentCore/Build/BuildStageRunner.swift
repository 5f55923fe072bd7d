import AgentSupport
import Dockerfile
import FoundationEssentials
import Glibc
import Images

extension BuildExecutor {
    /// The progress name of an instruction: `[builder 2/4] RUN make`.
    func vertexName(_ stage: Stage, _ position: Int, _ inst: Instruction, total: Int) -> String {
        let label = stage.name ?? "stage-\(stage.index)"
        // Redacted before it is clipped: a clip must never cut a secret in two.
        var text = redact(inst.original)
        if text.count > 200 { text = String(text.prefix(200)) + "..." }
        return "[\(label) \(position)/\(total)] \(text)"
    }

    /// Builds one stage: its base, the base's ONBUILD triggers, then its instructions.
    func buildStage(_ stage: Stage, base: String, file: Dockerfile, globals: Variables,
                    inputs: [Int: StageResult]) async throws(BuildError) -> StageResult {
        let total = stage.instructions.count + 1
        let v = progress.start("[\(stage.name ?? "stage-\(stage.index)") 1/\(total)] FROM \(base)")
        var s: StageResult
        if base == "scratch" {
            s = StageResult(config: ImageConfigDocument(), key: BuildCacheKey.base("scratch", platform: "linux/" + hostArchitecture))
        } else if let i = StageGraph.stageIndex(base, in: file, before: stage.index), let from = inputs[i] {
            s = from
            s.args = Variables()
        } else {
            s = try pullBase(base, stage.from)
        }
        progress.done(v)
        let triggers = s.config.onBuild ?? []
        s.config.onBuild = nil
        for (k, text) in triggers.enumerated() {
            let inst: Instruction
            do { inst = try Dockerfile.parseInstruction(text, file: fileName, line: stage.from.line) } catch {
                throw BuildError(.badInput, stage: "ONBUILD", "\(error)")
            }
            let tv = progress.start("[\(stage.name ?? "stage-\(stage.index)") 1/\(total)] ONBUILD \(k + 1): \(inst.original)")
            try await dispatch(inst, into: &s, stage: stage, file: file, globals: globals, inputs: inputs, vertex: tv)
        }
        for (k, inst) in stage.instructions.enumerated() {
            try Task.checkCancellation(as: BuildError.self)
            let iv = progress.start(vertexName(stage, k + 2, inst, total: total))
            try await dispatch(inst, into: &s, stage: stage, file: file, globals: globals, inputs: inputs, vertex: iv)
        }
        return s
    }

    /// Pulls (if not stored) and prepares a base image; its full config becomes the stage's.
    func pullBase(_ text: String, _ inst: Instruction) throws(BuildError) -> StageResult {
        do {
            let source = try ImageSource.parse(text)
            let image = try store.prepare(source, pull: .ifNotPresent)
            let loaded = try store.load(manifest: image.digest, reference: image.reference)
            let base = (config: try ImageConfigDocument.parse(try store.content.read(loaded.configDigest), reference: image.reference,
                                                               digest: loaded.configDigest), layers: loaded.layers)
            var s = StageResult(config: base.config, baseManifest: image.digest,
                                key: BuildCacheKey.base(image.digest.description, platform: "linux/" + hostArchitecture))
            s.baseLayers = base.layers
            s.baseDiffIDs = image.config.diffIDs
            s.snapshots = image.layers
            leases.hold(image.lease)
            return s
        } catch {
            throw BuildError(.agent, stage: "FROM", located(inst, "FROM \(text): \(error)"))
        }
    }

    /// Runs one instruction on the stage.
    func dispatch(_ inst: Instruction, into s: inout StageResult, stage: Stage, file: Dockerfile, globals: Variables,
                  inputs: [Int: StageResult], vertex v: BuildProgress.Vertex) async throws(BuildError) {
        do {
            switch inst.command {
            case .run(let r):
                try await runInstruction(inst, r, into: &s, file: file, stageIndex: stage.index, inputs: inputs, vertex: v)
            case .copy(let c), .add(let c):
                try await copyInstruction(inst, c, into: &s, file: file, stageIndex: stage.index, globals: globals, inputs: inputs, vertex: v)
            default:
                try applyMetadata(inst, into: &s, globals: globals)
                progress.done(v)
            }
        } catch {
            if error.code != .runFailed { progress.failed(v, error.message) }
            throw error
        }
    }

    /// Adds a layer (or an empty-layer history entry) and moves the key on.
    func record(_ layer: WrittenLayer?, createdBy: String, key: Digest, into s: inout StageResult) throws(BuildError) {
        s.key = key
        let created = request.sourceDateEpoch.map { ImageConfigDocument.timestamp(epochSeconds: $0) }
            ?? ImageConfigDocument.timestamp(epochSeconds: Int64(time(nil)))
        let empty = layer == nil || layer!.isEmpty
        s.config.history.append(HistoryEntry(created: created, createdBy: createdBy, comment: "agent build", emptyLayer: empty))
        guard let layer, !layer.isEmpty else { return }
        s.layers.append(layer)
        // With prunes held off, the snapshot is made (or found) and listed in the build's
        // content lease, with the layer (a cached one too), before a prune can look.
        let hold = try store.holdPruneForBuild()
        defer { hold.end() }
        do {
            let snaps = try store.snapshots.ensure(image: "build", layers: s.allLayers, diffIDs: s.allDiffIDs)
            s.snapshots = snaps.paths
        } catch {
            throw BuildError(.agent, stage: "layer", "cannot unpack the new layer: \(error)")
        }
        try leases.list(blob: layer.descriptor.digest, snapshots: s.snapshots)
    }
}

/// Image leases held for the build's life (base snapshots stay off `agent image prune`),
/// and the content lease that lists the layers and snapshots the build makes until its
/// commit tags them (`ContentLease`; without it a prune during the build took them).
final class BuildLeases: @unchecked Sendable {
    private let lock = Lock()
    private var held: [ImageLease] = []
    private var content: ContentLease?
    /// What the content lease lists already (a stage's record lists all its snapshots).
    private var listed: Set<String> = []
    func hold(_ l: ImageLease?) {
        guard let l else { return }
        lock.withLock { held.append(l) }
    }

    /// Starts the content lease (once, before the first layer is written).
    func begin(_ store: ImageStore) throws(BuildError) {
        do { let l = try store.contentLease(); lock.withLock { content = l } } catch {
            throw BuildError(.agent, stage: "build", "cannot lease the build's content in the image store: \(error)")
        }
    }

    /// Lists `blob` (when given) and `snapshots` in the content lease; call with the
    /// store's prune held off (`ImageStore.holdPrune`).
    func list(blob: Digest?, snapshots: [String] = []) throws(BuildError) {
        let (lease, blobIsNew, newSnapshots): (ContentLease?, Bool, [String]) = lock.withLock {
            let fresh = snapshots.filter { !listed.contains("s " + $0) }
            let blobIsNew = blob.map { !listed.contains("b " + $0.hex) } ?? false
            listed.formUnion(fresh.map { "s " + $0 } + (blobIsNew ? ["b " + blob!.hex] : []))
            return (content, blobIsNew, fresh)
        }
        guard let lease else { return }
        do {
            if blobIsNew, let blob { try lease.add(blob: blob) }
            if !newSnapshots.isEmpty { try lease.add(snapshots: newSnapshots) }
        } catch {
            throw BuildError(.agent, stage: "layer", "cannot lease the build's content in the image store: \(error)")
        }
    }

    /// Ends the content lease (after the commit has tagged what the build made).
    func end() { lock.withLock { content }?.release() }
}

extension ImageStore {
    /// `agent image prune` held off until `end()`: a layer written and listed in the build's
    /// content lease in between is never seen unlisted by a prune.
    func holdPruneForBuild() throws(BuildError) -> PruneHold {
        do { return try holdPrune() } catch {
            throw BuildError(.agent, stage: "layer", "cannot hold image prunes off: \(error)")
        }
    }
}

extension Task where Success == Never, Failure == Never {
    static func checkCancellation(as: BuildError.Type) throws(BuildError) {
        if Task.isCancelled { throw BuildError(.cancelled, stage: "build", "cancelled") }
    }
}
