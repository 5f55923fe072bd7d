/// Decides, step by step, whether the next step runs: GitLab/Buildkite semantics.
///
/// After a failed step (one that failed without `allow_failure`, or timed out), later
/// `on_success` steps are skipped while `on_failure` and `always` steps run. After a
/// cancellation every remaining step is `cancelled`; after the job's deadline every
/// remaining step is skipped.
public struct StepPlanner: Sendable, Equatable {
    public enum Decision: Sendable, Equatable {
        case run
        case skip(reason: String)
        case cancel
    }

    /// The job has a failure that `on_success` steps must respect.
    public private(set) var failed = false
    public private(set) var cancelled = false
    public private(set) var deadlinePassed = false

    public init() {}

    public func decide(_ step: StepSpec) -> Decision {
        if cancelled { return .cancel }
        if deadlinePassed { return .skip(reason: "job timed out") }
        switch step.when {
        case .always: return .run
        case .onSuccess: return failed ? .skip(reason: "an earlier step failed") : .run
        case .onFailure: return failed ? .run : .skip(reason: "no earlier step failed")
        }
    }

    /// Records how a step that ran ended.
    public mutating func record(_ state: StepState, allowFailure: Bool) {
        switch state {
        case .failed, .error: if !allowFailure { failed = true }
        case .timedOut: failed = true
        case .cancelled: cancelled = true
        default: break
        }
    }

    public mutating func markCancelled() { cancelled = true }
    public mutating func markDeadlinePassed() {
        deadlinePassed = true
        failed = true
    }

    /// The job's final state given its steps' states.
    public static func jobState(steps: [StepStatus], cancelled: Bool, jobTimedOut: Bool) -> JobState {
        if cancelled { return .cancelled }
        if jobTimedOut { return .timedOut }
        for s in steps where !s.allowFailure {
            switch s.state {
            case .error: return .error
            case .timedOut: return .timedOut
            case .failed: return .failed
            default: continue
            }
        }
        return .succeeded
    }

    /// `agent run-job` exit code for a job state: a CI runner can tell a broken build (1)
    /// from a broken agent (3).
    public static func exitCode(for state: JobState) -> Int32 {
        switch state {
        case .succeeded: return 0
        case .failed, .timedOut: return 1
        case .error: return 3
        case .cancelled: return 130
        case .running: return 3
        }
    }
}
