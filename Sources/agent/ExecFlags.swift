import AgentCore
import AgentSupport
import ArgumentParser
import FoundationEssentials
import Glibc
import Sandbox
import SandboxPolicy

/// `agent exec`'s flags as a plain value, and what the command does with them. `ExecCommand`
/// (swift-argument-parser) fills it for every command line; `ExecFlags.parseFast` fills it
/// without the parser for the plain form (`--flag value`... `--` CMD), the start-up fast path.
struct ExecFlags {
    var rootfs: String = "host"
    var image: String?
    var pull: String = "if-not-present"
    var stateDir: String?
    var rwRootfs = false
    var binds: [String] = []
    var tmpfs: [String] = []
    var policy: String?
    var network: String = "none"
    var seccomp: String = "default"
    var capDrop: [String] = []
    var capAdd: [String] = []
    var env: [String] = []
    var workdir: String = "/"
    var hostname: String = "sandbox"
    var user: String?
    var idMap: String = "auto"
    var timeout: String?
    var allowRoot = false
    var interactive = false
    var verbose = false
    /// The command and its arguments (without the `--`).
    var command: [String] = []

    /// The configuration `validate()` built, so `run()` does not build it again (nor read a
    /// `--seccomp` file twice). Written by `validate()` and read by `run()`, one after the
    /// other on the task that parses and runs the command.
    nonisolated(unsafe) private static var validated: (configuration: ContainerConfiguration, policy: AgentPolicy)?

    /// The descriptors of the admitted rootfs and bind sources: held open (their inodes
    /// alive) until the process exits; set with `validated`, on the same task.
    nonisolated(unsafe) private static var heldDescriptors: [Int32] = []

    func validate() throws {
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

    /// Runs the container on the calling thread (`RunningContainer.runOnThisThread`: no
    /// thread start and no hand-off between threads) and exits with its status.
    func run() throws {
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
            let verbose = self.verbose
            let result = try RunningContainer.runOnThisThread(c, hostNetworkAllowed: { allowHostNetwork },
                                                              reservation: Self.reservation) { container in
                if verbose {
                    let early = Self.reservation != nil ? " (begun before the policy was read)" : ""
                    printToStandardError("agent: id mapping: \(Self.name(container.idMapping))\(early)\n")
                    if let stack = container.networkStack { printToStandardError("agent: network: outbound through \(stack)\n") }
                    printToStandardError("agent: seccomp: \(Self.seccompSource(SeccompCache.shared.statistics)) (cache folder: \(c.seccompCacheDirectory ?? "none"))\n")
                }
            }
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

    /// The variables `agent exec` reads (the policy, the home and state folders), by
    /// getenv: `ProcessInfo.environment` builds a dictionary of the whole environment, and
    /// was built three times per start.
    static var environment: [String: String] {
        var e: [String: String] = [:]
        for key in ["AGENT_POLICY", "HOME", "XDG_STATE_HOME"] {
            if let v = getenv(key) { e[key] = String(cString: v) }
        }
        return e
    }

    /// `--id-map` as the container's mapping.
    func idMapping() throws -> ContainerConfiguration.IDMapping {
        switch idMap {
        case "auto", "automatic": return .automatic
        case "single": return .single
        case "subordinate": return .subordinate
        default: throw ValidationError("--id-map must be auto, single or subordinate, not '\(idMap)'")
        }
    }

    /// The container this command line asks for, within the agent policy, and that policy.
    /// Throws `ExecParsing.InvalidValue`/`ValidationError` for a bad flag value,
    /// `PolicyError` for a policy that does not load, `ExecPolicyGate.Refusal` for a flag
    /// the policy does not allow.
    func makeConfiguration() throws -> (configuration: ContainerConfiguration, policy: AgentPolicy) {
        let resolved = try AgentPolicy.resolve(commandLine: policy, environment: Self.environment)
        let gate = ExecPolicyGate(policy: resolved.policy.sandbox, source: resolved.source)
        var c = ContainerConfiguration(command: command.first == "--" ? Array(command.dropFirst()) : command)
        if rootfs != "host" {
            c.rootfs = .directory(HostPath(rootfs.hasPrefix("/") ? rootfs : FileManager.default.currentDirectoryPath + "/" + rootfs))
        }
        if let image {
            guard rootfs == "host" else { throw ValidationError("--image and --rootfs cannot be combined") }
            try ExecImage.apply(image, pull: pull, stateDir: stateDir, policy: resolved.policy, workdirGiven: workdir != "/",
                                userGiven: user != nil, idMapping: try idMapping(), to: &c)
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
        try ExecHostPaths.admit(&c, keep: &opened, environment: Self.environment)
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
        c.idMapping = try idMapping()
        if let timeout { c.timeout = try ExecParsing.duration(timeout) }
        c.allowRoot = allowRoot
        c.stdin = interactive ? .inherit : .null
        c.output = .inherit
        return (c, resolved.policy)
    }
}

extension ExecFlags {
    /// The plain command line of `agent exec`, parsed without swift-argument-parser, whose
    /// reflection-driven set-up (every option's metadata and conformances, looked up at run
    /// time) was about a fifth of the agent's CPU time per container start. Only the plain
    /// form: long options as `--name value` or `--name=value`, then `--` and the command. A
    /// short or unknown option, `--help`, a missing or empty value or one that starts with
    /// `-`, a flag with a value, a non-repeatable option given twice, no `--`, or `--image`
    /// without `--pull never` give nil, and the full parser takes the command line (and its
    /// usage errors) as before.
    static func parseFast(_ arguments: ArraySlice<String>) -> ExecFlags? {
        var f = ExecFlags()
        var seen: [String] = []
        var i = arguments.startIndex
        while i < arguments.endIndex {
            let a = arguments[i]
            if a == "--" {
                f.command = Array(arguments[(i + 1)...])
                return f.command.isEmpty ? nil : f
            }
            guard a.hasPrefix("--") else { return nil }
            var name = String(a.dropFirst(2))
            var value: String? = nil
            if let eq = name.firstIndex(of: "=") {
                value = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            let repeatable = ["bind", "tmpfs", "cap-drop", "cap-add", "env"].contains(name)
            if !repeatable {
                if seen.contains(name) { return nil }
                seen.append(name)
            }
            switch name {
            case "rw-rootfs", "allow-root", "interactive", "verbose":
                guard value == nil else { return nil }
                if name == "rw-rootfs" { f.rwRootfs = true }
                if name == "allow-root" { f.allowRoot = true }
                if name == "interactive" { f.interactive = true }
                if name == "verbose" { f.verbose = true }
                i += 1
                continue
            default: break
            }
            if value == nil {
                i += 1
                guard i < arguments.endIndex else { return nil }
                value = arguments[i]
            }
            guard let v = value, !v.isEmpty, !v.hasPrefix("-") else { return nil }
            switch name {
            case "rootfs": f.rootfs = v
            case "bind": f.binds.append(v)
            case "tmpfs": f.tmpfs.append(v)
            case "policy": f.policy = v
            case "network": f.network = v
            case "seccomp": f.seccomp = v
            case "cap-drop": f.capDrop.append(v)
            case "cap-add": f.capAdd.append(v)
            case "env": f.env.append(v)
            case "workdir": f.workdir = v
            case "hostname": f.hostname = v
            case "user": f.user = v
            case "id-map": f.idMap = v
            case "timeout": f.timeout = v
            // An image only from the store (`--pull never`, checked below): validating twice
            // (when the fast path hands over to the parser) then never pulls twice.
            case "image": f.image = v
            case "pull": f.pull = v
            case "state-dir": f.stateDir = v
            default: return nil  // --help, anything unknown
            }
            i += 1
        }
        return nil
    }

    /// The fast path of `Agent.main`: the flags of a plain `agent exec` command line, validated
    /// (the container's configuration built), or nil to leave it to the full parser (also when
    /// validation finds a usage error: the parser then reports it as always, exit 64).
    static func fastPath(_ argv: [String]) -> ExecFlags? {
        guard argv.count > 3, argv[1] == "exec", let f = parseFast(argv.dropFirst(2)) else { return nil }
        if f.image != nil && f.pull != "never" { return nil }
        reservation = f.reserve()
        do { try f.validate() } catch { reservation?.cancel(); reservation = nil; return nil }
        return f
    }

    /// The child `reserve` spawned, for `run()`; set and read on the main thread, one after
    /// the other, as `validated` is.
    nonisolated(unsafe) private static var reservation: ContainerReservation?

    /// Spawns the container's child and starts its id mapping before the policy is read
    /// (`ContainerReservation`), for a plain `--rootfs` start with `--network none` and
    /// subordinate ids: what no policy refuses. nil otherwise.
    func reserve() -> ContainerReservation? {
        guard image == nil, network == "none", !allowRoot, let mapping = try? idMapping() else { return nil }
        return ContainerReservation.start(stdin: interactive ? .inherit : .null, idMapping: mapping, hostname: hostname)
    }
}
