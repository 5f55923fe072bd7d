import AgentCore
import AgentSupport
import ArgumentParser
import FoundationEssentials
import Glibc

/// `agent build`: builds a Dockerfile into an OCI image, rootless and daemonless, with
/// BuildKit's cache and secret mounts. Flags and `--output` specs as `docker buildx build`
/// names them.
///
/// Exit codes (run-job's): 0 built, 1 a RUN failed (the message names the Dockerfile
/// line), 2 bad input or refused, 3 agent error, 130 cancelled.
struct BuildCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Build an image from a Dockerfile (BuildKit's syntax, cache and secret mounts) into the image store or an archive.",
        discussion: "Exit codes: 0 built, 1 a RUN failed, 2 bad input, 3 agent error, 130 cancelled."
    )

    @Argument(help: "The build context folder.")
    var context: String

    @Option(name: .shortAndLong, help: "The Dockerfile (default: CONTEXT/Dockerfile).")
    var file: String?

    @Option(name: [.customShort("t"), .customLong("tag")], help: "Name the image in the agent's store (NAME:TAG). Repeatable.")
    var tags: [String] = []

    @Option(name: .customLong("build-arg"), help: "A build argument, K=V. Repeatable.")
    var buildArgs: [String] = []

    @Option(name: .customLong("secret"), help: "A build secret: id=ID[,src=FILE|,env=VAR]. Repeatable.")
    var secrets: [String] = []

    @Option(help: "Build this stage (default: the last).")
    var target: String?

    @Flag(help: "Do not use the build cache.")
    var noCache = false

    @Option(help: "Progress on stderr: auto, plain, tty or json.")
    var progress: String = "auto"

    @Option(name: .customLong("output"), help: "type=oci,dest=FILE | type=docker,dest=FILE | type=local,dest=DIR | type=image,name=REF[,push=true]; compression=zstd. Repeatable.")
    var outputs: [String] = []

    @Flag(help: "Push every -t tag to its registry.")
    var push = false

    @OptionGroup var common: CommonOptions

    func run() async throws {
        try refuseRoot(common.allowRoot)
        let code = await execute()
        throw ExitCode(code)
    }

    private func fail(_ e: BuildError) -> Int32 {
        printToStandardError("agent: \(e.message)\n")
        return e.code.rawValue
    }

    private func execute() async -> Int32 {
        let env = ProcessInfo.processInfo.environment
        let cwd = FileManager.default.currentDirectoryPath
        let format: BuildProgress.Format
        switch progress {
        // As BuildKit: `auto` is the live view on a terminal, the plain log otherwise.
        case "auto": format = ProgressMode.auto.resolved(for: FileDescriptorOutput(fd: 2)) == .tty ? .tty : .plain
        case "tty": format = .tty
        case "plain": format = .plain
        case "json": format = .json
        default: return fail(BuildError(.badInput, stage: "flags", "--progress \(progress): use auto, plain, tty or json"))
        }
        let policy: AgentPolicy
        let state: StateDirectory
        do {
            policy = try common.loadPolicy()
            state = try StateDirectory(root: common.stateDirectory())
        } catch {
            return fail(BuildError(.agent, stage: "setup", "\(error)"))
        }
        let ctx = open(context, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard ctx >= 0 else { return fail(BuildError(.badInput, stage: "context", "\(context): cannot open the build context: \(String(cString: strerror(errno)))")) }
        defer { close(ctx) }
        // The Dockerfile: -f as the operator wrote it, else CONTEXT/Dockerfile.
        let path = file ?? (context + "/Dockerfile")
        guard let data = FileManager.default.contents(atPath: path) else {
            return fail(BuildError(.badInput, stage: "dockerfile", "\(path): cannot read the Dockerfile"))
        }
        var request = BuildRequest(contextFD: ctx, contextName: context, dockerfile: Array(data),
                                   dockerfileName: file.map { String($0.split(separator: "/").last ?? "Dockerfile") } ?? "Dockerfile")
        request.tags = tags
        for a in buildArgs {
            let kv = a.split(separator: "=", maxSplits: 1).map(String.init)
            // `--build-arg NAME` takes the value from the agent's environment, as docker does.
            if kv.count == 2 { request.buildArgs[kv[0]] = kv[1] } else if let v = env[kv[0]] { request.buildArgs[kv[0]] = v }
        }
        request.target = target
        request.noCache = noCache
        request.push = push
        request.cacheScope = common.cacheScope
        if let e = env["SOURCE_DATE_EPOCH"] {
            guard let n = Int64(e), n >= 0 else { return fail(BuildError(.badInput, stage: "flags", "SOURCE_DATE_EPOCH=\(e) is not a number of seconds")) }
            request.sourceDateEpoch = n
        }
        do {
            for o in outputs {
                if o.contains("compression=zstd") { request.zstd = true }
                request.outputs.append(try BuildRequest.parseOutput(o.split(separator: ",").filter { !$0.hasPrefix("compression=") }.joined(separator: ",")))
            }
            request.secrets = try BuildRequest.secrets(flags: secrets, policy: policy, scope: common.cacheScope, environment: env, cwd: cwd)
        } catch let e as BuildError {
            return fail(e)
        } catch {
            return fail(BuildError(.agent, stage: "flags", "\(error)"))
        }
        let matcher = request.secrets.makeMatcher()
        let out = BuildProgress(format: format, output: FileDescriptorOutput(fd: 2), redact: { matcher.redact($0) })
        let executor: BuildExecutor
        do { executor = try BuildExecutor(request: request, policy: policy, state: state, progress: out, allowRoot: common.allowRoot) } catch {
            return fail(error)
        }
        let signals: AsyncStream<Int32>
        do { signals = try ShutdownSignals.stream() } catch { return fail(BuildError(.agent, stage: "setup", "\(error)")) }
        let task = Task { () async -> Result<BuildResult, BuildError> in
            do throws(BuildError) { return .success(try await executor.run()) } catch { return .failure(error) }
        }
        let watcher = Task { for await _ in signals { task.cancel() } }
        let outcome = await task.value
        watcher.cancel()
        switch outcome {
        case .success(let r):
            out.note("built \(r.manifestDigest ?? "") (\(r.ran) run, \(r.cached) cached)" + (r.tags.isEmpty ? "" : "; tagged " + r.tags.joined(separator: ", ")))
            if !r.pushed.isEmpty { out.note("pushed " + r.pushed.joined(separator: ", ")) }
            out.finish()
            print(r.manifestDigest ?? "")
            return 0
        case .failure(let e):
            out.finish()
            return fail(e)
        }
    }
}
