import AgentSupport
import FoundationEssentials
import Glibc

/// The content of `status.json`: what a CI runner reads to learn how a job went.
/// Keys are snake_case; times are ISO 8601 UTC with milliseconds.
public struct JobStatus: Codable, Sendable, Equatable {
    public var agentVersion: String = AgentVersion.current
    public var jobID: String
    public var state: JobState
    /// The `agent run-job` exit code this status corresponds to (0, 1, 2, 3, 130).
    public var exitCode: Int32
    public var startedAt: String
    public var finishedAt: String?
    public var durationSeconds: Double?
    /// `single` or `subordinate`: how container ids were mapped.
    public var idMapping: String?
    /// `"image": "REF"` jobs: the normalised reference, the manifest digest the steps ran
    /// on, and how the image's owners were mapped (every file belongs to the agent's uid,
    /// which is root inside in both modes).
    public var image: ImageUse?
    public var warnings: [String] = []
    /// Why the job ended in `error`, or why no step ran (a service's failed wait); redacted.
    public var error: String?
    public var steps: [StepStatus] = []
    /// The job's services (nil for a job without services).
    public var services: [ServiceStatus]?
    public var artifacts: ArtifactSummary?
    public var tests: JUnitSummary?

    public init(jobID: String, state: JobState, exitCode: Int32, startedAt: String) {
        self.jobID = jobID
        self.state = state
        self.exitCode = exitCode
        self.startedAt = startedAt
    }

    enum CodingKeys: String, CodingKey {
        case agentVersion = "agent_version", jobID = "job_id", state, exitCode = "exit_code"
        case startedAt = "started_at", finishedAt = "finished_at", durationSeconds = "duration_seconds"
        case idMapping = "id_mapping", image, warnings, error, steps, services, artifacts, tests
    }
}

/// The image a job's steps ran on (status.json `image`).
public struct ImageUse: Codable, Sendable, Equatable {
    public var reference: String
    public var digest: String
    public var owners: String
    public init(reference: String, digest: String, owners: String) {
        self.reference = reference
        self.digest = digest
        self.owners = owners
    }
}

/// One step in `status.json`.
public struct StepStatus: Codable, Sendable, Equatable {
    public var index: Int
    public var name: String
    public var type: String
    public var state: StepState
    public var exitCode: Int32?
    public var signal: Int32?
    public var startedAt: String?
    public var finishedAt: String?
    public var durationSeconds: Double?
    public var allowFailure: Bool
    /// Relative path of the step's log in the results folder.
    public var log: String?
    /// Why the step was skipped, cancelled or errored.
    public var reason: String?
    public var caches: [CacheUse] = []
    /// Test steps: totals of the collected JUnit reports.
    public var tests: JUnitSummary?
    /// Which process limit the step's container ran under.
    public var processLimit: ProcessLimit?
    /// The step's network mode and, for `outbound`, the stack that ran.
    public var network: StepNetwork?

    public init(index: Int, name: String, type: String, state: StepState, allowFailure: Bool) {
        self.index = index
        self.name = name
        self.type = type
        self.state = state
        self.allowFailure = allowFailure
    }

    enum CodingKeys: String, CodingKey {
        case index, name, type, state, exitCode = "exit_code", signal
        case startedAt = "started_at", finishedAt = "finished_at", durationSeconds = "duration_seconds"
        case allowFailure = "allow_failure", log, reason, caches, tests
        case processLimit = "process_limit", network
    }
}

/// A step's network in status.json: `{"mode": "outbound", "stack": "slirp4netns"}`.
public struct StepNetwork: Codable, Sendable, Equatable {
    public var mode: String
    /// The user-mode stack (`slirp4netns`) of an outbound step that started.
    public var stack: String?

    public init(mode: String, stack: String?) {
        self.mode = mode
        self.stack = stack
    }
}

/// The process limit a step ran under: `{"kind": "rlimit", "value": 4096}`. `kind` is the
/// mechanism (`rlimit`: RLIMIT_NPROC set by the container's init; `cgroup`: a delegated
/// cgroup v2 `pids.max`, not used yet).
public struct ProcessLimit: Codable, Sendable, Equatable {
    public var kind: String
    public var value: UInt64

    public init(kind: String, value: UInt64) {
        self.kind = kind
        self.value = value
    }
}

/// What artifact collection did, for status.json.
public struct ArtifactSummary: Codable, Sendable, Equatable {
    public var files: Int
    public var bytes: UInt64
    public var errors: [String]

    public init(files: Int, bytes: UInt64, errors: [String]) {
        self.files = files
        self.bytes = bytes
        self.errors = errors
    }
}

extension JobStatus {
    /// The status with every free-text string passed through `redact`: the job id, warnings,
    /// the error, and per step the name, type, log path, reason, caches and artifact errors.
    /// status.json is redacted this way before it is encoded, so JSON escaping can never
    /// hide a secret from the matcher (states, times and counts are not text anyone chose).
    public func redacted(by redact: (String) -> String) -> JobStatus {
        var out = self
        out.jobID = redact(jobID)
        out.idMapping = idMapping.map(redact)
        out.image?.reference = redact(image?.reference ?? "")
        out.warnings = warnings.map(redact)
        out.error = error.map(redact)
        out.steps = steps.map { $0.redacted(by: redact) }
        out.services = services?.map { $0.redacted(by: redact) }
        out.artifacts?.errors = artifacts?.errors.map(redact) ?? []
        return out
    }
}

extension StepStatus {
    /// The step with its name, type, log path, reason and caches passed through `redact`.
    public func redacted(by redact: (String) -> String) -> StepStatus {
        var out = self
        out.name = redact(name)
        out.type = redact(type)
        out.log = log.map(redact)
        out.reason = reason.map(redact)
        out.caches = caches.map { use in
            var c = use
            c.id = redact(use.id)
            c.scope = redact(use.scope)
            c.sharing = redact(use.sharing)
            c.target = redact(use.target)
            return c
        }
        return out
    }
}

extension Duration {
    /// Seconds as a Double (for status.json and progress).
    public var seconds: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) / 1e18
    }
}
