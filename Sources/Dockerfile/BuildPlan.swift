/// What a build is asked for besides the Dockerfile: `--build-arg`, `--target`, platforms.
public struct BuildOptions: Sendable, Equatable {
    /// `--build-arg NAME=value` (the CLI resolves `--build-arg NAME` from its environment).
    public var buildArgs: [String: String]
    /// `--target STAGE`, nil for the last stage.
    public var target: String?
    /// The platform built for (`TARGETPLATFORM`).
    public var targetPlatform: Platform
    /// The platform building (`BUILDPLATFORM`).
    public var buildPlatform: Platform

    public init(buildArgs: [String: String] = [:], target: String? = nil,
                targetPlatform: Platform = .host, buildPlatform: Platform = .host) {
        self.buildArgs = buildArgs
        self.target = target
        self.targetPlatform = targetPlatform
        self.buildPlatform = buildPlatform
    }
}

/// What a stage builds on.
public enum StageBase: Sendable, Equatable {
    /// `FROM scratch`: an empty root and config.
    case scratch
    /// An earlier stage's result, by index.
    case stage(Int)
    /// An image reference, expanded (`busybox:1.36`, `127.0.0.1:5000/x@sha256:...`).
    case image(String)
}

/// A stage the build needs, with its edges.
public struct PlannedStage: Sendable, Equatable {
    /// The stage as parsed.
    public var stage: Stage
    /// Its base, `FROM` expanded in the global scope.
    public var base: StageBase
    /// `FROM --platform=`, expanded and parsed; nil when not given.
    public var platform: Platform?
    /// The stages that must finish first (base, `COPY --from`, `RUN --mount from=`,
    /// those of the base stage's ONBUILD triggers), sorted.
    public var dependencies: [Int]
    /// Images named by `COPY --from` or `RUN --mount from=` that are no stage, in order.
    public var images: [String]

    public var index: Int { stage.index }
}

/// The stages a build runs and the order they can run in: made from a parsed Dockerfile
/// and the options, before anything runs, so every stage error (unknown `--target`, an
/// empty base name, a cycle, `type=ssh`) exits 2 first.
public struct BuildPlan: Sendable {
    public let dockerfile: Dockerfile
    public let options: BuildOptions
    /// The global ARG values (the predefined ARGs, the global `ARG`s, `--build-arg`s): what
    /// `FROM` lines expand in, and what `ARG NAME` inside a stage inherits.
    public let globalScope: Variables
    /// The index of the target stage.
    public let target: Int
    /// The needed stages in an order where each comes after its dependencies.
    public let stages: [PlannedStage]
    /// `--build-arg` names no needed `ARG` declared (predefined and proxy ARGs,
    /// `SOURCE_DATE_EPOCH` and `BUILDKIT_*` excepted).
    public let unusedBuildArgs: [String]

    /// BuildKit's warning for unused build args, nil when all were used.
    public var unusedBuildArgsWarning: String? {
        unusedBuildArgs.isEmpty ? nil : "[Warning] One or more build-args [\(unusedBuildArgs.joined(separator: " "))] were not consumed"
    }

    /// The planned stage of `index`, nil when the target does not need it.
    public func planned(_ index: Int) -> PlannedStage? { stages.first { $0.index == index } }

    /// The needed stages grouped in waves: every stage of a wave depends only on stages of
    /// earlier waves, so a wave's stages can run in parallel.
    public var waves: [[Int]] {
        var level: [Int: Int] = [:]
        for s in stages { level[s.index] = (s.dependencies.compactMap { level[$0] }.max() ?? -1) + 1 }
        let n = (level.values.max() ?? -1) + 1
        return (0..<n).map { l in stages.map(\.index).filter { level[$0] == l } }
    }

    /// The dispatch state for stage `index` starting from `base` (the base image's config,
    /// the parent stage's final config, or `ImageConfig()` for scratch).
    public func stageState(for index: Int, base: ImageConfig) throws(DockerfileError) -> StageState {
        try StageState(base: base, globalScope: globalScope, buildArgs: options.buildArgs,
                       escape: dockerfile.escape, file: dockerfile.file,
                       triggerLine: dockerfile.stages[index].from.line)
    }

    /// The predefined ARGs of a build (`TARGETPLATFORM`, `TARGETOS`, ..., `BUILDVARIANT`).
    public static func predefinedArgs(_ o: BuildOptions) -> Variables {
        var v = Variables()
        v["TARGETPLATFORM"] = o.targetPlatform.description
        v["TARGETOS"] = o.targetPlatform.os
        v["TARGETARCH"] = o.targetPlatform.architecture
        v["TARGETVARIANT"] = o.targetPlatform.variant ?? ""
        v["BUILDPLATFORM"] = o.buildPlatform.description
        v["BUILDOS"] = o.buildPlatform.os
        v["BUILDARCH"] = o.buildPlatform.architecture
        v["BUILDVARIANT"] = o.buildPlatform.variant ?? ""
        return v
    }

    /// Plans the build of `dockerfile` with `options`.
    public init(_ dockerfile: Dockerfile, options: BuildOptions = BuildOptions()) throws(DockerfileError) {
        self.dockerfile = dockerfile
        self.options = options
        let file = dockerfile.file
        let lex = ShellLex(escape: dockerfile.escape)

        // Global scope: predefined ARGs, then each global ARG (a --build-arg wins).
        var scope = BuildPlan.predefinedArgs(options)
        for (k, v) in options.buildArgs.sorted(by: { $0.key < $1.key }) where scope.contains(k) { scope[k] = v }
        var declared: Set<String> = []
        for inst in dockerfile.globalArgs {
            guard case .arg(let decls) = inst.command else { continue }
            for d in decls {
                declared.insert(d.name)
                if let b = options.buildArgs[d.name] {
                    scope[d.name] = b
                } else if let def = d.defaultValue {
                    do { scope[d.name] = try lex.expand(def, scope) } catch {
                        throw DockerfileError(.expansion, error.message, file: file, line: inst.line, instruction: "ARG")
                    }
                }
            }
        }
        globalScope = scope

        // Target.
        let stages = dockerfile.stages
        if let t = options.target {
            guard let s = stages.first(where: { $0.name == t.lowercased() }) ?? Int(t).flatMap({ $0 >= 0 && $0 < stages.count ? stages[$0] : nil }) else {
                var msg = "target stage \"\(t)\" could not be found"
                if let s = Suggest.closest(t, among: stages.compactMap(\.name)) { msg += " (did you mean \"\(s)\"?)" }
                throw DockerfileError(.target, msg, file: file)
            }
            target = s.index
        } else {
            target = stages.count - 1
        }

        // Every stage's edges, then the ones the target reaches.
        var all: [PlannedStage] = []
        for stage in stages {
            all.append(try BuildPlan.edges(of: stage, in: dockerfile, scope: scope, lex: lex, earlier: all))
        }
        // Reachable stages (a cycle among them is an error), then an order where every
        // stage follows its dependencies, lowest index first among the ready ones.
        var reachable: Set<Int> = []
        var state: [Int: Int] = [:]  // 1 visiting, 2 done
        func visit(_ i: Int) throws(DockerfileError) {
            if state[i] == 2 { return }
            if state[i] == 1 {
                throw DockerfileError(.stage, "circular dependency detected on stage: \(stages[i].displayName)",
                                      file: file, line: stages[i].from.line, instruction: "FROM")
            }
            state[i] = 1
            for d in all[i].dependencies { try visit(d) }
            state[i] = 2
            reachable.insert(i)
        }
        try visit(target)
        var needed: [Int] = []
        var done: Set<Int> = []
        while needed.count < reachable.count {
            let ready = reachable.filter { !done.contains($0) && all[$0].dependencies.allSatisfy(done.contains) }.min()!
            needed.append(ready)
            done.insert(ready)
        }
        self.stages = needed.map { all[$0] }

        // Unsupported features in the stages that run.
        for i in needed {
            for inst in stages[i].instructions {
                if case .run(let r) = inst.command, r.mounts.contains(where: { $0.kind == .ssh }) {
                    throw DockerfileError(.unsupported, "RUN --mount=type=ssh is not supported: agent build forwards no SSH agent",
                                          file: file, line: inst.line, instruction: "RUN")
                }
                // Git sources are told apart on the words as written; an expanded word that
                // turns into one is caught by the executor through `classifiedSources`.
                // Sources as written that leave the context; expanded ones are checked by
                // `StageState.apply`.
                if case .copy(let c) = inst.command, !c.sources.contains(where: { $0.contains("$") }) {
                    do { try ContextPaths.check(c, keyword: "COPY") } catch {
                        throw error.located(file: file, line: inst.line, instruction: "COPY")
                    }
                }
                if case .add(let c) = inst.command, !c.sources.contains(where: { $0.contains("$") }) {
                    do { try ContextPaths.check(c, keyword: "ADD") } catch {
                        throw error.located(file: file, line: inst.line, instruction: "ADD")
                    }
                }
                if case .add(let c) = inst.command {
                    for case .git(let src) in c.classifiedSources {
                        throw DockerfileError(.unsupported, "ADD of a git repository (\(src)) is not supported: clone it in a RUN step instead",
                                              file: file, line: inst.line, instruction: "ADD")
                    }
                }
            }
        }

        // Build args no needed ARG declares.
        for i in needed {
            for inst in stages[i].instructions {
                if case .arg(let decls) = inst.command { for d in decls { declared.insert(d.name) } }
            }
        }
        let predefined = Set(BuildPlan.predefinedArgs(options).names)
        unusedBuildArgs = options.buildArgs.keys.filter {
            // SOURCE_DATE_EPOCH and BUILDKIT_* are read by the build itself, not by ARGs.
            !declared.contains($0) && !predefined.contains($0) && !StageState.isProxyName($0)
                && $0 != "SOURCE_DATE_EPOCH" && !$0.hasPrefix("BUILDKIT_")
        }.sorted()
    }

    /// A stage's base and its dependencies.
    static func edges(of stage: Stage, in df: Dockerfile, scope: Variables, lex: ShellLex,
                      earlier: [PlannedStage]) throws(DockerfileError) -> PlannedStage {
        let file = df.file
        let from = stage.base
        let name: String
        do { name = try lex.expand(from.image, scope) } catch {
            throw DockerfileError(.expansion, error.message, file: file, line: stage.from.line, instruction: "FROM")
        }
        guard !name.isEmpty else {
            throw DockerfileError(.arguments, "base name (\(from.image)) should not be blank", file: file, line: stage.from.line, instruction: "FROM")
        }
        var platform: Platform?
        if let p = from.platform {
            let v: String
            do { v = try lex.expand(p, scope) } catch {
                throw DockerfileError(.expansion, error.message, file: file, line: stage.from.line, instruction: "FROM")
            }
            guard let parsed = Platform.parse(v) else {
                throw DockerfileError(.arguments, "failed to parse platform \(p): \"\(v)\" is no os/arch[/variant]",
                                      file: file, line: stage.from.line, instruction: "FROM")
            }
            platform = parsed
        }
        var deps: Set<Int> = []
        var images: [String] = []
        let base: StageBase
        if name == "scratch" {
            base = .scratch
        } else if let s = earlier.first(where: { $0.stage.name == name }) {
            // As BuildKit: the name exactly as the stage's (stage names are lower case, so
            // `FROM Base` is an image reference, not the stage `base`).
            base = .stage(s.index)
            deps.insert(s.index)
        } else {
            base = .image(name)
        }
        // Named stages anywhere count for --from; an index must name another stage.
        func resolve(_ ref: String, _ inst: Instruction) throws(DockerfileError) {
            if let n = Int(ref) {
                guard n != stage.index else {
                    throw DockerfileError(.stage, "circular dependency detected on stage: \(stage.displayName)",
                                          file: file, line: inst.line, instruction: inst.keyword)
                }
                guard n >= 0 && n < df.stages.count else {
                    throw DockerfileError(.stage, "invalid stage index \(n) in --from (the Dockerfile has stages 0 to \(df.stages.count - 1))",
                                          file: file, line: inst.line, instruction: inst.keyword)
                }
                deps.insert(n)
            } else if let s = df.stages.first(where: { $0.name == ref.lowercased() }) {
                guard s.index != stage.index else {
                    throw DockerfileError(.stage, "circular dependency detected on stage: \(s.displayName)",
                                          file: file, line: inst.line, instruction: inst.keyword)
                }
                deps.insert(s.index)
            } else if !images.contains(ref) {
                images.append(ref)
            }
        }
        var instructions = stage.instructions
        if case .stage(let b) = base {
            for inst in df.stages[b].instructions {
                if case .onbuild(let text) = inst.command {
                    instructions.append(try Dockerfile.parseInstruction(text, file: file, line: stage.from.line, escape: df.escape))
                }
            }
        }
        for inst in instructions {
            switch inst.command {
            case .copy(let c):
                if let f = c.from {
                    guard !f.contains("$") else {
                        throw DockerfileError(.flag, "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround",
                                              file: file, line: inst.line, instruction: inst.keyword)
                    }
                    try resolve(f, inst)
                }
            case .run(let r):
                for m in r.mounts { if let f = m.from, !f.isEmpty { try resolve(f, inst) } }
            default: break
            }
        }
        return PlannedStage(stage: stage, base: base, platform: platform, dependencies: deps.sorted(), images: images)
    }
}
