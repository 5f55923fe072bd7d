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

    /// The parsed flags as a plain value (the fast path of `Agent.main` builds the same value
    /// without the parser).
    var flags: ExecFlags {
        ExecFlags(rootfs: rootfs,
                  image: image,
                  pull: pull,
                  stateDir: stateDir,
                  rwRootfs: rwRootfs,
                  binds: binds,
                  tmpfs: tmpfs,
                  policy: policy,
                  network: network,
                  seccomp: seccomp,
                  capDrop: capDrop,
                  capAdd: capAdd,
                  env: env,
                  workdir: workdir,
                  hostname: hostname,
                  user: user,
                  idMap: idMap,
                  timeout: timeout,
                  allowRoot: allowRoot,
                  interactive: interactive,
                  verbose: verbose,
                  command: command)
    }

    mutating func validate() throws {
        if command.first == "--" { command.removeFirst() }
        try flags.validate()
    }

    func run() async throws { try flags.run() }
}
