import AgentSupport
import FoundationEssentials
import Glibc
import SandboxPolicy

/// How `agent run-job` (and `agent watch`) run jobs; one value per agent process.
public struct RunnerOptions: Sendable {
    /// The agent's state folder (caches, volumes, job layers); never visible to containers.
    public var stateDirectory: String
    public var policy: AgentPolicy
    /// `--secret` flags in BuildKit syntax (`id=x,src=file` / `id=x,env=VAR`).
    public var secretFlags: [String] = []
    /// The cache scope every job of this process runs in (`--cache-scope`): its caches,
    /// volumes and scope-limited policy secrets. The operator's grant; a job's own
    /// `cache.scope` may only repeat it (`ScopeGrant`).
    public var cacheScope: String = ScopeGrant.defaultScope
    /// The agent's own environment: where `env` secret sources are read from. Nothing of
    /// it reaches a container unless the job names it.
    public var environment: [String: String]
    /// Relative `--secret src=` paths resolve against this folder.
    public var workingDirectory: String
    /// SIGTERM → SIGKILL grace for timed-out and cancelled steps.
    public var killGrace: Duration = .seconds(10)
    /// Per-step log cap in bytes.
    public var logCapBytes: Int = 16 << 20
    /// Replace a non-empty results folder.
    public var force: Bool = false
    /// Write a results folder (status.json with `state: error`) even for an invalid job;
    /// the queue wants one, `agent run-job` does not (nothing half-written).
    public var writeResultsForInvalidJobs: Bool = false
    /// Running as root was explicitly allowed (`--allow-root`).
    public var allowRoot: Bool = false
    /// `--workspace-root` folders: granted to jobs' `workspace` besides the policy's roots.
    public var workspaceRoots: [String] = []
    /// The queue folder under `agent watch`: never reachable by a job.
    public var queueDirectory: String?

    public init(stateDirectory: String, policy: AgentPolicy, environment: [String: String], workingDirectory: String) {
        self.stateDirectory = stateDirectory
        self.policy = policy
        self.environment = environment
        self.workingDirectory = workingDirectory
    }
}

/// The result of one `run`: the exit code contract plus where results went.
public struct JobOutcome: Sendable {
    public var exitCode: Int32
    public var state: JobState
    /// The results folder, when one was written.
    public var resultsPath: String?
    /// For invalid input or an agent error: the (redacted) message for stderr.
    public var message: String?
}
