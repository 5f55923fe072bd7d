/// The state one stage's dispatch carries from instruction to instruction, BuildKit's
/// rules: words are expanded in the variables seen so far (the base image's `Env`, then
/// `ENV` and `ARG` in order; an `ENV`/`LABEL` instruction sees the variables from before
/// it, each `ARG` of a line those of the ARGs before it). `ARG` values reach `RUN` as
/// environment but never the image config; `ENV` reaches both.
///
/// The executor makes one per stage (`BuildPlan.stageState(for:base:)`), runs the base
/// image's `ONBUILD` triggers (`triggers`) and then the stage's instructions through
/// `apply`, and writes `config` into the image.
public struct StageState: Sendable {
    /// The image config as the instructions so far leave it.
    public private(set) var config: ImageConfig
    /// The variables expansion and `RUN` see: config env plus ARG values.
    public private(set) var variables: Variables
    /// The ARGs declared in this stage that have a value, in order (for cache keys and
    /// history, as BuildKit records `ARG` values of `RUN`s).
    public private(set) var args: Variables
    /// The base image's `ONBUILD` triggers, parsed: the executor applies and runs them first.
    public let triggers: [Instruction]
    /// True once `CMD` was set in this stage (so `ENTRYPOINT` keeps it).
    public private(set) var cmdSet = false

    let lex: ShellLex
    let buildArgs: [String: String]
    let globalScope: Variables
    let proxyArgs: Variables
    let file: String

    /// A stage starting from `base` (the base image's config, or the parent stage's final
    /// config; `ImageConfig()` for scratch). `PATH` is added when the base has none.
    /// `globalScope` are the global ARG values, `buildArgs` the `--build-arg`s.
    public init(base: ImageConfig, globalScope: Variables, buildArgs: [String: String],
                escape: Character = "\\", file: String = "Dockerfile", triggerLine: Int = 1) throws(DockerfileError) {
        var cfg = base
        if !Variables(environment: cfg.env).contains("PATH") {
            cfg.env.append("PATH=" + ImageConfig.defaultPath)
        }
        var triggers: [Instruction] = []
        for text in cfg.onBuild {
            do {
                triggers.append(try Dockerfile.parseInstruction(text, file: file, line: triggerLine, escape: escape))
            } catch {
                // The trigger comes from the base image, not this file: say so, clipped.
                var e = error
                let shown = text.count > 80 ? String(text.prefix(80)) + "..." : text
                e.message = "ONBUILD trigger \(CacheText.quote(shown)) of the base image: " + e.message
                throw e
            }
        }
        cfg.onBuild = []
        self.config = cfg
        self.variables = Variables(environment: cfg.env)
        self.args = Variables()
        self.triggers = triggers
        self.lex = ShellLex(escape: escape)
        self.buildArgs = buildArgs
        self.globalScope = globalScope
        var proxies = Variables()
        for (k, v) in buildArgs.sorted(by: { $0.key < $1.key }) where StageState.isProxyName(k) { proxies[k] = v }
        self.proxyArgs = proxies
        self.file = file
    }

    /// The proxy variables BuildKit passes to every `RUN` without an `ARG` and keeps out of
    /// cache keys and history.
    public static let proxyNames = ["HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY"]

    static func isProxyName(_ k: String) -> Bool { proxyNames.contains(k.uppercased()) }

    /// The shell of shell-form commands.
    public var shell: [String] { config.effectiveShell }

    /// The working folder `RUN` and relative `COPY` destinations use (`/` when unset).
    public var workingDir: String { config.workingDir.isEmpty ? "/" : config.workingDir }

    func expand(_ word: String, _ inst: Instruction) throws(DockerfileError) -> String {
        do { return try lex.expand(word, variables) } catch {
            throw DockerfileError(.expansion, error.message, file: file, line: inst.line, instruction: inst.keyword)
        }
    }

    /// Applies one instruction: returns it with its words expanded and what its cache key
    /// needs, and updates the config and variables. Throws for expansion failures
    /// (`${X?msg}`), a bad `--mount` after expansion, a bad port or signal.
    public mutating func apply(_ inst: Instruction) throws(DockerfileError) -> AppliedInstruction {
        do {
            return try dispatch(inst)
        } catch {
            throw error.located(file: file, line: inst.line, instruction: inst.keyword)
        }
    }

    private mutating func dispatch(_ inst: Instruction) throws(DockerfileError) -> AppliedInstruction {
        var out = inst
        let seen = variables
        switch inst.command {
        case .from:
            throw DockerfileError(.stage, "FROM starts a stage; it is not applied inside one")
        case .env(let pairs):
            var expanded: [KeyValue] = []
            for p in pairs {
                expanded.append(KeyValue(key: try expand(p.key, inst), value: try expand(p.value, inst), legacyForm: p.legacyForm))
            }
            for p in expanded {
                variables[p.key] = p.value
                var env = Variables(environment: config.env)
                env[p.key] = p.value
                config.env = env.environment
            }
            out.command = .env(expanded)
        case .arg(let decls):
            var resolved: [ArgDeclaration] = []
            for d in decls {
                // ARG names are not expanded, and each default sees the ARGs before it.
                let name = d.name
                var value: String?
                if let b = buildArgs[name] {
                    value = b
                } else if let def = d.defaultValue {
                    value = try expand(def, inst)
                } else if let g = globalScope[name] {
                    value = g
                }
                if let value {
                    variables[name] = value
                    args[name] = value
                }
                resolved.append(ArgDeclaration(name: name, defaultValue: value))
            }
            out.command = .arg(resolved)
        case .label(let pairs):
            var expanded: [KeyValue] = []
            for p in pairs {
                expanded.append(KeyValue(key: try expand(p.key, inst), value: try expand(p.value, inst), legacyForm: p.legacyForm))
            }
            for p in expanded { config.labels[p.key] = p.value }
            out.command = .label(expanded)
        case .workdir(let path):
            let p = try expand(path, inst)
            config.workingDir = PathJoin.normalizeWorkdir(current: config.workingDir, p)
            out.command = .workdir(config.workingDir)
        case .user(let u):
            let v = try expand(u, inst)
            config.user = v
            out.command = .user(v)
        case .stopSignal(let s):
            let v = try expand(s, inst)
            guard Signals.isValid(v) else { throw DockerfileError(.arguments, "invalid signal: \(v)") }
            config.stopSignal = v
            out.command = .stopSignal(v)
        case .volume(let vols):
            var expanded: [String] = []
            for v in vols {
                let e = try expand(v, inst)
                guard !e.isEmpty else { throw DockerfileError(.arguments, "VOLUME specified can not be an empty string") }
                expanded.append(e)
            }
            config.volumes = Array(Set(config.volumes).union(expanded)).sorted()
            out.command = .volume(expanded)
        case .expose(let ports):
            var words: [String] = []
            for p in ports {
                do { words += try lex.expandWords(p, variables) } catch {
                    throw DockerfileError(.expansion, error.message)
                }
            }
            let specs = try PortSpec.parse(words)
            config.exposedPorts = Array(Set(config.exposedPorts).union(specs)).sorted()
            out.command = .expose(specs)
        case .cmd(let line):
            config.cmd = line.withShell(shell)
            cmdSet = true
        case .entrypoint(let line):
            config.entrypoint = line.prependsShell || !line.arguments.isEmpty ? line.withShell(shell) : nil
            if !cmdSet { config.cmd = nil }
        case .shell(let s):
            config.shell = s
        case .healthcheck(let h):
            config.healthcheck = h
        case .onbuild(let text):
            config.onBuild.append(text)
        case .maintainer(let m):
            config.author = m
        case .run(var run):
            var mounts: [RunMount] = []
            for spec in run.mountSpecs {
                mounts.append(try RunMount.parse(spec, deferVariables: false) { (v: String) throws(DockerfileError) -> String in
                    try self.expand(v, inst)
                })
            }
            run.mounts = mounts
            out.command = .run(run)
        case .copy(var c), .add(var c):
            c.sources = try c.sources.map { (s: String) throws(DockerfileError) -> String in try expand(s, inst) }
            c.destination = try expand(c.destination, inst)
            if let v = c.chown { c.chown = try expand(v, inst) }
            if let v = c.chmod { c.chmod = try expand(v, inst) }
            if let v = c.checksum { c.checksum = try expand(v, inst) }
            var raw = lex
            raw.skipProcessQuotes = true
            raw.escape = "\\"
            for i in c.inlineSources.indices where c.inlineSources[i].expands {
                do { c.inlineSources[i].data = try raw.expand(c.inlineSources[i].data, variables) } catch {
                    throw DockerfileError(.expansion, error.message)
                }
            }
            try ContextPaths.check(c, keyword: inst.keyword)
            out.command = c.isAdd ? .add(c) : .copy(c)
        }
        return AppliedInstruction(instruction: out, variables: seen, args: args,
                                  proxyEnvironment: proxyArgs.names.filter { !args.contains($0) }.map { $0 + "=" + proxyArgs[$0]! },
                                  user: config.user, workingDir: workingDir, shell: shell)
    }
}

/// One instruction after `StageState.apply`: expanded, with what it ran in.
public struct AppliedInstruction: Sendable {
    /// The instruction with its words expanded (RUN: mounts expanded, the command not).
    public var instruction: Instruction
    /// The variables the instruction saw (before its own changes): the environment a `RUN`
    /// gets, ARG values included.
    public var variables: Variables
    /// The stage's ARGs with values at that point.
    public var args: Variables
    /// Proxy `--build-arg`s not declared with `ARG`: passed to `RUN`, kept out of cache
    /// keys and history (`HTTP_PROXY=...`).
    public var proxyEnvironment: [String]
    /// The user and working folder the instruction runs as and in (after it, for USER and
    /// WORKDIR).
    public var user: String
    public var workingDir: String
    /// The shell of shell-form commands at that point.
    public var shell: [String]

    /// The environment of a `RUN`: `NAME=value`, variables then proxies.
    public var environment: [String] { variables.environment + proxyEnvironment }

    /// The text a cache key hashes, BuildKit's model: the expanded instruction, the
    /// environment and ARGs it sees (not the proxies), its user, folder, shell, network and
    /// mount specs. A secret mount contributes its id and target, never a value. One
    /// field a line, so no field can forge another.
    public var cacheKeyText: String {
        var lines: [String] = ["instruction=" + CacheText.quote(instruction.keyword)]
        lines += CacheText.describe(instruction.command)
        lines += variables.environment.map { "env=" + CacheText.quote($0) }
        lines += args.environment.map { "arg=" + CacheText.quote($0) }
        lines.append("user=" + CacheText.quote(user))
        lines.append("workdir=" + CacheText.quote(workingDir))
        lines.append("shell=" + CacheText.quote(shell.joined(separator: "\u{0}")))
        return lines.joined(separator: "\n")
    }

    /// The command a `RUN` executes, heredocs resolved (see `CommandLine.resolved`).
    public var runCommand: ResolvedCommand? {
        guard case .run(let r) = instruction.command else { return nil }
        return r.command.resolved(shell: shell)
    }
}
