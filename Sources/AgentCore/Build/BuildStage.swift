import Dockerfile
import FoundationEssentials
import Images

/// The state of a stage while it is built, and what a finished stage hands on (to a
/// `FROM stage`, a `COPY --from`, a `RUN --mount=from=`, or the final commit).
struct StageResult: Sendable {
    /// The full config as it stands (env, workdir, user, labels, history, ...).
    var config: ImageConfigDocument
    /// The stored manifest the stage's image started from (nil: `scratch`).
    var baseManifest: Digest?
    /// The base image's layers and diff_ids (bottom first).
    var baseLayers: [Descriptor] = []
    var baseDiffIDs: [Digest] = []
    /// Layers this build wrote on top of the base (bottom first; empty ones left out).
    var layers: [WrittenLayer] = []
    /// Snapshot folders of the whole stack, top first (the RUN's lower layers).
    var snapshots: [String] = []
    /// The cache key of the last instruction.
    var key: Digest
    /// ARGs declared in the stage so far, with their values.
    var args = Variables()
    /// `SHELL` (default `/bin/sh -c`).
    var shell: [String] = ["/bin/sh", "-c"]

    /// Every layer of the image, bottom first, and its diff_ids.
    var allLayers: [Descriptor] { baseLayers + layers.map(\.descriptor) }
    var allDiffIDs: [Digest] { baseDiffIDs + layers.map(\.diffID) }

    /// The environment as variables (the config's `Env`).
    var env: Variables { Variables(environment: config.env) }

    /// What expansion sees: the stage's ARGs under its ENV (ENV wins, as in BuildKit).
    var expansionVariables: Variables { args.merging(env) }

    /// The working folder (default `/`).
    var workdir: String { (config.workingDir?.isEmpty ?? true) ? "/" : config.workingDir! }

    /// `path` made absolute against the working folder.
    func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        let base = workdir.hasSuffix("/") ? workdir : workdir + "/"
        return base + path
    }
}

/// How the executor finds the stage a name refers to. Which stages run, and in what order,
/// is the frontend's `BuildPlan` (BuildKit's rules: `FROM` names earlier stages only,
/// `--from` any other stage, cycles are errors).
enum StageGraph {
    /// The stage a `FROM` names (an earlier stage's name, or index), or nil for an image.
    static func stageIndex(_ name: String, in file: Dockerfile, before limit: Int) -> Int? {
        let lower = name.lowercased()
        if let i = file.stages[..<limit].firstIndex(where: { $0.name == lower }) { return i }
        if let n = Int(name), n >= 0, n < limit { return n }
        return nil
    }

    /// The stage a `COPY --from` / `RUN --mount=from=` names: any other stage of the file,
    /// by name or index (a later one too, as BuildKit allows), or nil for an image.
    static func fromIndex(_ name: String, in file: Dockerfile, stage: Int) -> Int? {
        if let n = Int(name) { return n >= 0 && n < file.stages.count && n != stage ? n : nil }
        let lower = name.lowercased()
        return file.stages.firstIndex { $0.name == lower && $0.index != stage }
    }
}

/// At most `limit` holders at once (RUN containers up to the core count).
actor BuildSlots {
    private var free: Int
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(_ limit: Int) { free = max(1, limit) }

    func acquire() async {
        if free > 0 { free -= 1; return }
        await withCheckedContinuation { waiters.append($0) }
    }

    func release() {
        if waiters.isEmpty { free += 1 } else { waiters.removeFirst().resume() }
    }
}
