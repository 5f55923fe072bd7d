import AgentSupport
import Dockerfile
import FoundationEssentials
import Glibc
import Images
import SandboxPolicy

/// Runs a build: parses the Dockerfile (every syntax error exits 2 before anything runs),
/// checks what it asks for against the operator's grant (base registries, secrets,
/// network), runs the stages the target needs (independent ones in parallel, RUNs up to
/// the core count), commits the target stage and writes the outputs.
public final class BuildExecutor: Sendable {
    let request: BuildRequest
    let policy: AgentPolicy
    let state: StateDirectory
    let store: ImageStore
    let cache: BuildCacheStore
    let progress: BuildProgress
    let seccomp: SeccompPolicy
    let allowRoot: Bool
    let slots: BuildSlots
    let matcher: SecretMatcher
    /// Folder for this build's temporary upper folders and staging trees.
    let work: String

    public init(request: BuildRequest, policy: AgentPolicy, state: StateDirectory, progress: BuildProgress,
                allowRoot: Bool = false) throws(BuildError) {
        self.request = request
        self.policy = policy
        self.state = state
        self.progress = progress
        self.allowRoot = allowRoot
        matcher = request.secrets.makeMatcher()
        ignore = try BuildIgnore(contextFD: request.contextFD)
        slots = BuildSlots(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        do {
            try state.create()
            var s = try ImageStore(stateDirectory: state.root, insecureRegistries: policy.images.insecureRegistries)
            s.credentials = (try? RegistryCredentials.load(environment: ProcessInfo.processInfo.environment)) ?? RegistryCredentials()
            store = s
            seccomp = try policy.seccompPolicy()
        } catch {
            throw BuildError(.agent, stage: "setup", "\(error)")
        }
        cache = try BuildCacheStore(state: state, scope: request.cacheScope, content: store.content)
        work = state.root + "/builds/tmp/" + String(getpid()) + "-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        do {
            try StateDirectory.makeDirectory(state.root + "/builds/tmp", mode: 0o700)
            try StateDirectory.makeDirectory(work, mode: 0o700)
        } catch {
            throw BuildError(.agent, stage: "setup", "cannot create \(work): \(error)")
        }
    }

    func redact(_ s: String) -> String { matcher.redact(s) }

    /// The parsed file's name for messages: `Dockerfile:7: ...`.
    var fileName: String { request.dockerfileName }

    func located(_ inst: Instruction, _ message: String) -> String {
        "\(fileName):\(inst.line): \(message)"
    }

    /// Runs the build. Temporary folders are removed whatever happens.
    public func run() async throws(BuildError) -> BuildResult {
        let outcome: Result<BuildResult, BuildError>
        do { outcome = .success(try await build()) } catch { outcome = .failure(error) }
        await RootlessRemove.remove(work)
        return try outcome.get()
    }

    private func build() async throws(BuildError) -> BuildResult {
        let file: Dockerfile
        do {
            file = try Dockerfile.parse(String(decoding: request.dockerfile, as: UTF8.self), file: fileName)
        } catch {
            throw BuildError(.badInput, stage: "parse", "\(error)")
        }
        if let syntax = file.syntax {
            progress.note("#0 # syntax=\(syntax): the frontend image is not fetched; the built-in dockerfile:1 frontend reads the file")
        }
        for w in file.warnings { progress.note("warning: \(w)") }
        let globals = try globalArgs(file)
        let bases = try file.stages.map { s throws(BuildError) -> String in try expand(s.base.image, globals, s.from) }
        // The frontend's plan decides which stages run and what each waits for (BuildKit's
        // rules: `--target`, `FROM` of earlier stages, `--from` of any stage, ONBUILD
        // triggers' sources, cycles), before anything runs.
        let plan: BuildPlan
        do {
            plan = try BuildPlan(file, options: BuildOptions(buildArgs: request.buildArgs, target: request.target))
        } catch {
            throw BuildError(.badInput, stage: "plan", "\(error)")
        }
        let target = plan.target
        let needed = plan.stages.map(\.index)
        try preflight(file, stages: needed, bases: bases, globals: globals)

        // What the stages make is listed in a content lease until the commit has tagged it,
        // so an `agent image prune` meanwhile keeps it.
        try leases.begin(store)
        defer { leases.end() }
        // One task per needed stage, in the plan's order (dependencies first); each waits
        // for the stages it reads from.
        var tasks: [Int: Task<StageResult, any Error>] = [:]
        for planned in plan.stages {
            let i = planned.index
            let depTasks = planned.dependencies.compactMap { d in tasks[d].map { (d, $0) } }
            let stage = file.stages[i], base = bases[i]
            tasks[i] = Task {
                var inputs: [Int: StageResult] = [:]
                for (d, t) in depTasks { inputs[d] = try await t.value }
                return try await self.buildStage(stage, base: base, file: file, globals: globals, inputs: inputs)
            }
        }
        let final: StageResult
        let all = tasks
        do {
            final = try await withTaskCancellationHandler {
                try await all[target]!.value
            } onCancel: {
                all.values.forEach { $0.cancel() }
            }
        } catch let e as BuildError {
            tasks.values.forEach { $0.cancel() }
            throw e
        } catch {
            tasks.values.forEach { $0.cancel() }
            throw BuildError(Task.isCancelled ? .cancelled : .agent, stage: "build", redact("\(error)"))
        }
        var result = try await finish(final)
        cache.collect(keepBytes: Int64(policy.cache.keepBytes))
        result.ran = counters.ran
        result.cached = counters.cached
        return result
    }

    let counters = BuildCounters()
    let leases = BuildLeases()
    /// The context's `.dockerignore`.
    let ignore: BuildIgnore

    /// The global ARGs (before the first FROM) with the build args applied, plus the
    /// predefined platform ARGs.
    func globalArgs(_ file: Dockerfile) throws(BuildError) -> Variables {
        var v = Self.platformArgs()
        for inst in file.globalArgs {
            guard case .arg(let decls) = inst.command else { continue }
            for d in decls {
                if let given = request.buildArgs[d.name] { v[d.name] = given }
                else if let def = d.defaultValue { v[d.name] = try expand(def, v, inst) }
                // Declared without a value: unset (BuildKit), so `${NAME-word}` gives `word`.
            }
        }
        return v
    }

    static func platformArgs() -> Variables {
        let arch = hostArchitecture
        let p = "linux/" + arch
        return Variables([("TARGETPLATFORM", p), ("TARGETOS", "linux"), ("TARGETARCH", arch), ("TARGETVARIANT", ""),
                          ("BUILDPLATFORM", p), ("BUILDOS", "linux"), ("BUILDARCH", arch), ("BUILDVARIANT", "")])
    }

    func expand(_ word: String, _ vars: Variables, _ inst: Instruction) throws(BuildError) -> String {
        do { return try ShellLex(escape: "\\").expand(word, vars) } catch {
            throw BuildError(.badInput, stage: "parse", located(inst, "\(inst.keyword): \(error)"))
        }
    }

    /// Checks, before anything runs, what the needed stages ask of the operator: base
    /// images from allowed registries, secrets the operator provides, the network.
    func preflight(_ file: Dockerfile, stages: [Int], bases: [String], globals: Variables) throws(BuildError) {
        for i in stages {
            let s = file.stages[i]
            if bases[i] != "scratch", StageGraph.stageIndex(bases[i], in: file, before: i) == nil {
                try checkImage(bases[i], s.from)
            }
            for inst in s.instructions {
                switch inst.command {
                case .run(let r):
                    if let n = r.network, n != .none,
                       !(policy.allowHostNetwork || (n == .default && policy.sandbox.allowOutboundNetwork)) {
                        let allow = n == .default ? "allowOutboundNetwork or allowHostNetwork" : "allowHostNetwork"
                        throw BuildError(.badInput, stage: "RUN", located(inst, "RUN --network=\(n.rawValue): the agent policy gives builds no network (\(allow): false); RUN has only loopback"))
                    }
                    if r.security == .insecure {
                        throw BuildError(.badInput, stage: "RUN", located(inst, "RUN --security=insecure is not supported: every RUN is sandboxed"))
                    }
                    for m in r.mounts {
                        switch m.kind {
                        case .secret:
                            if let id = m.secretID, m.required, request.secrets.value(for: id) == nil {
                                throw BuildError(.badInput, stage: "RUN", located(inst, "RUN --mount=type=secret,id=\(id): secret \"\(id)\" is required but not provided (the operator gives it: --secret id=\(id),src=FILE)"))
                            }
                        case .ssh:
                            throw BuildError(.badInput, stage: "RUN", located(inst, "RUN --mount=type=ssh is not supported (no SSH agent is forwarded into builds)"))
                        case .bind, .cache:
                            if let f = m.from, StageGraph.fromIndex(f, in: file, stage: i) == nil {
                                try checkImage(try expand(f, globals, inst), inst)
                            }
                        default: break
                        }
                    }
                case .copy(let c), .add(let c):
                    if let f = c.from, StageGraph.fromIndex(f, in: file, stage: i) == nil {
                        try checkImage(try expand(f, globals, inst), inst)
                    }
                default: break
                }
            }
        }
    }

    func checkImage(_ text: String, _ inst: Instruction) throws(BuildError) {
        let source: ImageSource
        do { source = try ImageSource.parse(text) } catch {
            throw BuildError(.badInput, stage: inst.keyword, located(inst, "\(inst.keyword) \(text): \(error)"))
        }
        guard case .registry = source else {
            throw BuildError(.badInput, stage: inst.keyword, located(inst, "\(inst.keyword) \(text): a Dockerfile cannot name a host path as an image"))
        }
        if let why = ImageGate.refusal(source, policy: policy.images) {
            throw BuildError(.badInput, stage: inst.keyword, located(inst, "\(inst.keyword) \(why)"))
        }
    }
}

/// How many instructions ran and came from the cache.
final class BuildCounters: @unchecked Sendable {
    private let lock = Lock()
    private var r = 0, c = 0
    var ran: Int { lock.withLock { r } }
    var cached: Int { lock.withLock { c } }
    func addRan() { lock.withLock { r += 1 } }
    func addCached() { lock.withLock { c += 1 } }
}
