import AgentCore
import ArgumentParser
import AgentSupport
import FoundationEssentials
import Glibc
import Sandbox
import SandboxPolicy

/// `agent exec`: one ad-hoc sandboxed command, like `bwrap` or `docker run`.
///
/// The agent policy (`--policy FILE`, else `$AGENT_POLICY`, else the built-in one, resolved
/// as for `run-job`) is the ceiling: the container starts from the policy's capabilities and
/// seccomp profile, and `--cap-add`, `--network host` and `--seccomp` may only narrow it
/// (see `ExecPolicyGate`).
///
/// Exit status: the command's (128 + signal when killed); 125 when the agent fails
/// (set-up failure, refused as root, a bad policy, a flag the policy refuses) with
/// `agent: <message>` on stderr; 127/126 when the command is not found / not executable,
/// as Docker does; 64 for a bad flag (usage error).
struct ExecCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec",
        abstract: "Run one command in a rootless container.",
        discussion: """
            Exit status: the command's (128+N if killed by signal N); 125 for an agent error \
            or a flag the agent policy refuses; 126/127 if the command is not executable / not found; 64 for a bad flag or value.
            """
    )

    @Option(help: "Root filesystem: 'host' (read-only host /usr, /etc, ...) or a directory.")
    var rootfs: String = "host"

    @Option(help: "Run in a container image (a registry reference; its registry must be in the policy's images.allowedRegistries). Without a command: the image's Entrypoint and Cmd.")
    var image: String?

    @Option(help: "With --image: if-not-present (default), always or never.")
    var pull: String = "if-not-present"

    @Option(name: .customLong("state-dir"), help: "With --image: the agent's state folder holding the image store.")
    var stateDir: String?

    @Flag(name: .customLong("rw-rootfs"), help: "Keep the root filesystem writable.")
    var rwRootfs = false

    @Option(name: .customLong("bind"), help: "Bind mount SRC:DST[:ro|rw] (default ro). Repeatable.")
    var binds: [String] = []

    @Option(name: .customLong("tmpfs"), help: "tmpfs DST[:size=64m[,mode=1777]]. Repeatable.")
    var tmpfs: [String] = []

    @Option(help: "Agent policy file (default: $AGENT_POLICY, else the built-in policy).")
    var policy: String?

    @Option(help: "Network: none (loopback only), outbound (a way out through slirp4netns, if the policy allows it) or host (if the policy allows it).")
    var network: String = "none"

    @Option(help: "Seccomp profile: 'default' (the policy's), or 'unconfined' / a Docker-format JSON file if the policy allows it.")
    var seccomp: String = "default"

    @Option(name: .customLong("cap-drop"), help: "Drop a capability, or ALL. Repeatable.")
    var capDrop: [String] = []

    @Option(name: .customLong("cap-add"), help: "Add back a capability the policy allows. Repeatable.")
    var capAdd: [String] = []

    @Option(name: .customLong("env"), help: "Set K=V in the command's environment. Repeatable.")
    var env: [String] = []

    @Option(help: "Working directory inside the container.")
    var workdir: String = "/"

    @Option(help: "Hostname inside the container.")
    var hostname: String = "sandbox"

    @Option(help: "UID[:GID] the command runs as inside (default 0:0, or the --image's User).")
    var user: String?

    @Option(name: .customLong("id-map"), help: "Id mapping: auto, single or subordinate.")
    var idMap: String = "auto"

    @Option(help: "Wall-clock limit, e.g. 10s, 5m, 500ms.")
    var timeout: String?

    @Flag(name: .customLong("allow-root"), help: "Allow running as real root (container root still maps to an unprivileged range).")
    var allowRoot = false

    @Flag(help: "Pass the agent's stdin to the command (default: /dev/null).")
    var interactive = false

    @Flag(help: "Print the id-mapping mode on stderr.")
    var verbose = false

    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments (after --).")
    var command: [String] = []

    /// The configuration `validate()` built, so `run()` does not build it again (nor read a
    /// `--seccomp` file twice). Written by `validate()` and read by `run()`, one after the
    /// other on the task that parses and runs the command.
    nonisolated(unsafe) private static var validated: (configuration: ContainerConfiguration, policy: AgentPolicy)?

    /// The descriptors of the admitted rootfs and bind sources: held open (their inodes
    /// alive) until the process exits; set with `validated`, on the same task.
    nonisolated(unsafe) private static var heldDescriptors: [Int32] = []

    mutating func validate() throws {
        if command.first == "--" { command.removeFirst() }
        if let first = command.first {
            // Passthrough capture also swallows a mistyped option; never run it as a command.
            if first.hasPrefix("-") { throw ValidationError("unknown option '\(first)' (the command goes after --)") }
        } else if image == nil {
            throw ValidationError("missing command: agent exec [options] -- CMD [ARGS...]")
        }
        do {
            Self.validated = try makeConfiguration()
        } catch let e as ExecParsing.InvalidValue {
            throw ValidationError(e.description)
        } catch let e as ValidationError {
            throw e
        } catch {
            // A policy that does not load, or a flag it refuses: an agent error (125), not
            // a usage error, and nothing has started yet.
            Self.fail("\(error)")
        }
    }

    func run() async throws {
        let c: ContainerConfiguration
        let policy: AgentPolicy
        do {
            (c, policy) = try Self.validated ?? makeConfiguration()
        } catch {
            Self.fail("\(error)")
        }
        do {
            // The gate already refused `--network host` unless the policy allows it; the
            // sandbox checks again so no path around the gate can open the host network.
            let allowHostNetwork = policy.allowHostNetwork
            let container = try await RunningContainer.start(c, hostNetworkAllowed: { allowHostNetwork })
            if verbose {
                printToStandardError("agent: id mapping: \(Self.name(container.idMapping))\n")
                if let stack = container.networkStack { printToStandardError("agent: network: outbound through \(stack)\n") }
                printToStandardError("agent: seccomp: \(Self.seccompSource(SeccompCache.shared.statistics)) (cache folder: \(c.seccompCacheDirectory ?? "none"))\n")
            }
            let result = await container.wait()
            if verbose {
                let ms = Double(result.duration.components.attoseconds) / 1e15 + Double(result.duration.components.seconds) * 1000
                printToStandardError("agent: container ran \(fixedPoint(ms, decimals: 2)) ms (clone to exit), \(result.status)\n")
            }
            if result.timedOut { printToStandardError("agent: timed out after \(timeout ?? "")\n") }
            // Exits here rather than throwing ExitCode: the parser would first build a usage
            // text for it that nobody reads.
            Self.exit(result.status.shellExitCode)
        } catch let e as SandboxError {
            printToStandardError("agent: \(e)\n")
            if e.isExecFailure { Self.exit(e.errno == ENOENT ? 127 : 126) }
            Self.exit(125)
        }
    }

    /// How this process got its seccomp program, for `--verbose` (and the cache tests).
    static func seccompSource(_ s: SeccompCache.Statistics) -> String {
        if s.diskHits > 0 { return "program from the disk cache" }
        if s.compiles > 0 { return "compiled" + (s.diskWrites > 0 ? ", stored in the disk cache" : ", not stored") }
        return "none"
    }

    static func name(_ m: ContainerConfiguration.IDMapping) -> String {
        switch m {
        case .automatic: return "automatic"
        case .single: return "single"
        case .subordinate: return "subordinate"
        }
    }

    static func fail(_ message: String) -> Never {
        printToStandardError("agent: \(message)\n")
        exit(125)
    }

    /// Ends the process: C stdio flushed, then `_exit` (the container is over; exit(3)'s
    /// handlers and library destructors have nothing left to do for it).
    static func exit(_ code: Int32) -> Never {
        fflush(nil)
        _exit(code)
    }

    /// The container this command line asks for, within the agent policy, and that policy.
    /// Throws `ExecParsing.InvalidValue`/`ValidationError` for a bad flag value,
    /// `PolicyError` for a policy that does not load, `ExecPolicyGate.Refusal` for a flag
    /// the policy does not allow.
    func makeConfiguration() throws -> (configuration: ContainerConfiguration, policy: AgentPolicy) {
        let resolved = try AgentPolicy.resolve(commandLine: policy, environment: ProcessInfo.processInfo.environment)
        let gate = ExecPolicyGate(policy: resolved.policy.sandbox, source: resolved.source)
        var c = ContainerConfiguration(command: command.first == "--" ? Array(command.dropFirst()) : command)
        if rootfs != "host" {
            c.rootfs = .directory(HostPath(rootfs.hasPrefix("/") ? rootfs : FileManager.default.currentDirectoryPath + "/" + rootfs))
        }
        if let image {
            guard rootfs == "host" else { throw ValidationError("--image and --rootfs cannot be combined") }
            try ExecImage.apply(image, pull: pull, stateDir: stateDir, policy: resolved.policy, workdirGiven: workdir != "/",
                                userGiven: user != nil, to: &c)
        }
        c.readOnlyRoot = !rwRootfs
        // Mounts apply in command-line order; fall back to binds-then-tmpfs if the raw
        // arguments cannot be matched (e.g. when parsed from somewhere else).
        let ordered = ExecParsing.orderedMountFlags(Array(CommandLine.arguments.dropFirst()))
        if ordered.filter({ $0.flag == "--bind" }).map(\.value) == binds,
           ordered.filter({ $0.flag == "--tmpfs" }).map(\.value) == tmpfs {
            for (flag, value) in ordered {
                c.mounts.append(flag == "--bind" ? try ExecParsing.bind(value) : try ExecParsing.tmpfs(value))
            }
        } else {
            for b in binds { c.mounts.append(try ExecParsing.bind(b)) }
            for t in tmpfs { c.mounts.append(try ExecParsing.tmpfs(t)) }
        }
        // The agent's own files never reach a container; what is checked is what is mounted.
        var opened: [Int32] = []
        try ExecHostPaths.admit(&c, keep: &opened)
        Self.heldDescriptors = opened
        c.network = try gate.network(network)
        if c.network == .outbound {
            c.outbound = gate.outbound
            // Checked now, so a missing device fails before anything starts, naming the fix.
            try c.outbound.preflight()
        }
        c.seccomp = try gate.seccomp(seccomp)
        c.capabilities = try gate.capabilities(drop: capDrop, add: capAdd)
        for e in env {
            guard let eq = e.firstIndex(of: "="), eq != e.startIndex else {
                throw ValidationError("--env must be K=V, not '\(e)'")
            }
            let key = e[..<eq]
            c.environment.removeAll { $0.hasPrefix(key + "=") }
            c.environment.append(e)
        }
        guard workdir.hasPrefix("/") else { throw ValidationError("--workdir must be an absolute path, not '\(workdir)'") }
        // An image's WorkingDir applies unless --workdir is given.
        if image == nil || workdir != "/" { c.workingDirectory = workdir }
        guard !hostname.isEmpty, hostname.utf8.count <= 64 else { throw ValidationError("--hostname must be 1 to 64 bytes") }
        c.hostname = hostname
        // Without --user an image's User applies (ExecImage set it); else root.
        if let user { (c.uid, c.gid) = try ExecParsing.user(user) } else if image == nil { (c.uid, c.gid) = (0, 0) }
        switch idMap {
        case "auto", "automatic": c.idMapping = .automatic
        case "single": c.idMapping = .single
        case "subordinate": c.idMapping = .subordinate
        default: throw ValidationError("--id-map must be auto, single or subordinate, not '\(idMap)'")
        }
        if let timeout { c.timeout = try ExecParsing.duration(timeout) }
        c.allowRoot = allowRoot
        c.stdin = interactive ? .inherit : .null
        c.output = .inherit
        return (c, resolved.policy)
    }
}
