import AgentSupport
import FoundationEssentials
import Glibc
import Sandbox

/// State of one step in status.json and progress output.
public enum StepState: String, Sendable, Equatable, Codable {
    case pending, running, succeeded, failed
    case timedOut = "timed_out"
    case cancelled, skipped, error
}

/// State of a job in status.json.
public enum JobState: String, Sendable, Equatable, Codable {
    case running, succeeded, failed
    case timedOut = "timed_out"
    case cancelled, error
}

/// What the runner tells progress renderers (`--progress plain|tty|json`), in order.
/// Every string is already redacted.
public enum ProgressEvent: Sendable {
    case jobStarted(jobID: String, stepCount: Int, time: Date)
    /// `index` is 0-based; renderers show `#index+1`.
    case stepStarted(index: Int, total: Int, name: String, command: String, time: Date)
    /// One complete output line (without its newline), `elapsed` since the step started.
    case stepOutput(index: Int, stream: OutputChunk.Stream, line: String, elapsed: Duration)
    /// The step is waiting (e.g. for a locked cache); shown while it lasts.
    case stepWaiting(index: Int, reason: String)
    case stepFinished(index: Int, name: String, state: StepState, exitCode: Int32?, signal: Int32?,
                      duration: Duration, lastLines: [String])
    case stepSkipped(index: Int, total: Int, name: String, reason: String)
    case jobFinished(jobID: String, state: JobState, exitCode: Int32, duration: Duration)
    case warning(String)
    /// A service of the job started, became ready, or stopped: `message` says which.
    case service(alias: String, message: String)
}

/// A progress renderer; the runner calls it from one task at a time, in event order.
public protocol ProgressRenderer: Sendable {
    func handle(_ event: ProgressEvent)
    /// Several events in order (the output lines one chunk completed). Renderers that write
    /// text should write them at once: one write(2) per line was a cost of its own.
    func handle(batch events: [ProgressEvent])
    /// Flushes and restores the terminal (tty mode).
    func finish()
}

extension ProgressRenderer {
    /// Default: one event at a time.
    public func handle(batch events: [ProgressEvent]) {
        for event in events { handle(event) }
    }
}

/// Runs one job file and writes its results folder; implemented by the job runner,
/// consumed by `agent run-job` and the queue (`agent watch`).
public protocol JobExecuting: Sendable {
    /// Runs the job at `jobFile` and writes its results folder at `outputDirectory`
    /// (which must not exist; it appears complete or not at all). Returns the outcome, whose
    /// exit code is run-job's: 0 succeeded, 1 failed, 2 invalid job, 3 agent error, 130
    /// cancelled; when no results folder could be written, its message says why.
    /// Cancelling the calling task cancels the job; its results are still written.
    func execute(jobFile: String, outputDirectory: String) async -> JobOutcome
}
