import AgentCore
import ArgumentParser
import AgentSupport
import FoundationEssentials
import Glibc
import SandboxPolicy

/// Options every job-running command shares: where state lives, which policy applies.
struct CommonOptions: ParsableArguments {
    @Option(help: "The agent's state folder (default: $XDG_STATE_HOME/agent, else ~/.local/state/agent).")
    var stateDir: String?

    @Option(help: "Agent policy file (default: $AGENT_POLICY, else the built-in policy).")
    var policy: String?

    @Flag(help: "Allow running as root; container root still maps to an unprivileged range.")
    var allowRoot = false

    @Option(name: .customLong("workspace-root"),
            help: "A folder beneath which jobs' \"workspace\" may be, besides the policy's workspaceRoots. Repeatable.")
    var workspaceRoots: [String] = []

    // The scope is the operator's: a job file (from the repository under test) may only
    // repeat it in "cache.scope". Run fork jobs with a scope of their own.
    @Option(help: "Cache scope of the jobs: their caches, volumes and scope-limited policy secrets. A job's \"cache.scope\" must equal it.")
    var cacheScope: String = ScopeGrant.defaultScope

    func validate() throws {
        guard ScopeGrant.isValidScope(cacheScope) else {
            throw ValidationError("--cache-scope \"\(cacheScope)\" is not a valid scope: use [A-Za-z0-9][A-Za-z0-9._-]*, at most 128 characters")
        }
    }

    /// The agent policy, resolved as every command does (`AgentPolicy.resolve`: this
    /// `--policy`, else `$AGENT_POLICY`, else the built-in policy).
    func loadPolicy() throws -> AgentPolicy {
        try AgentPolicy.resolve(commandLine: policy, environment: ProcessInfo.processInfo.environment).policy
    }

    func stateDirectory() throws -> String {
        let state = try StateDirectory.resolve(explicit: stateDir, environment: ProcessInfo.processInfo.environment)
        try state.create()
        return state.root
    }

    func runnerOptions(secretFlags: [String], force: Bool, grace: Double) throws -> RunnerOptions {
        var o = RunnerOptions(
            stateDirectory: try stateDirectory(), policy: try loadPolicy(),
            environment: ProcessInfo.processInfo.environment,
            workingDirectory: FileManager.default.currentDirectoryPath)
        o.secretFlags = secretFlags
        o.cacheScope = cacheScope
        o.force = force
        o.allowRoot = allowRoot
        let cwd = FileManager.default.currentDirectoryPath
        o.workspaceRoots = workspaceRoots.map { $0.hasPrefix("/") ? $0 : cwd + "/" + $0 }
        o.killGrace = .milliseconds(Int64(grace * 1000))
        return o
    }
}

/// The agent is built to run as an ordinary user; as root it refuses unless told.
func refuseRoot(_ allowed: Bool) throws {
    if getuid() == 0 && !allowed {
        printToStandardError("agent: refusing to run as root; run as an unprivileged user, or pass --allow-root (container root then maps to an unprivileged range)\n")
        throw ExitCode(2)
    }
}
