import AgentSupport
import FoundationEssentials
import Glibc

/// `--progress json`: one JSON object per line, for a CI runner to consume.
///
/// Every object has `"type"` first and a `"time"` (RFC 3339, UTC, milliseconds):
/// - `job_started`: `job`, `steps` (count)
/// - `step_started`: `step` (1-based, as `#N` in plain output), `total`, `name`, `command`
/// - `log`: `step`, `stream` (`out`/`err`), `elapsed` (seconds since the step started), `line`
/// - `step_waiting`: `step`, `reason`
/// - `step_finished`: `step`, `name`, `state` (as in status.json), `exit_code`, `signal`,
///   `duration` (seconds), and `error` (`exit status 2`, `timed out`, ...) when it did not succeed.
///   Skipped steps get one too, with `state: "skipped"` and a `reason`.
/// - `job_finished`: `job`, `state`, `exit_code`, `duration`
/// - `warning`: `message`
public final class JSONProgress: ProgressRenderer {
    private let output: any ProgressOutput
    private let now: @Sendable () -> Date

    /// `now` stamps events that carry no time of their own (injectable for tests).
    public init(output: any ProgressOutput, now: @escaping @Sendable () -> Date = { Date() }) {
        self.output = output
        self.now = now
    }

    /// One write for the whole batch.
    public func handle(batch events: [ProgressEvent]) {
        output.write(events.map(render).joined())
    }

    public func handle(_ event: ProgressEvent) {
        output.write(render(event))
    }

    public func finish() {}

    /// The line (with its newline) for one event.
    func render(_ event: ProgressEvent) -> String {
        var o = JSONLine()
        switch event {
        case let .jobStarted(jobID, stepCount, time):
            o.add("type", "job_started"); o.add("time", time)
            o.add("job", jobID); o.add("steps", Int64(stepCount))
        case let .stepStarted(index, total, name, command, time):
            o.add("type", "step_started"); o.add("time", time)
            o.add("step", Int64(index + 1)); o.add("total", Int64(total))
            o.add("name", name); o.add("command", command)
        case let .stepOutput(index, stream, line, elapsed):
            o.add("type", "log"); o.add("time", now())
            o.add("step", Int64(index + 1)); o.add("stream", stream.rawValue)
            o.addRaw("elapsed", JobDuration.millis(elapsed)); o.add("line", line)
        case let .stepWaiting(index, reason):
            o.add("type", "step_waiting"); o.add("time", now())
            o.add("step", Int64(index + 1)); o.add("reason", reason)
        case let .stepFinished(index, name, state, exitCode, signal, duration, _):
            o.add("type", "step_finished"); o.add("time", now())
            o.add("step", Int64(index + 1)); o.add("name", name); o.add("state", state.rawValue)
            o.add("exit_code", exitCode.map(Int64.init)); o.add("signal", signal.map(Int64.init))
            o.addRaw("duration", JobDuration.millis(duration))
            if [.failed, .timedOut, .error].contains(state) {
                o.add("error", PlainProgress.failureReason(state: state, exitCode: exitCode, signal: signal))
            }
        case let .stepSkipped(index, _, name, reason):
            o.add("type", "step_finished"); o.add("time", now())
            o.add("step", Int64(index + 1)); o.add("name", name); o.add("state", StepState.skipped.rawValue)
            o.add("exit_code", nil); o.add("signal", nil); o.addRaw("duration", "0.000")
            o.add("reason", reason)
        case let .jobFinished(jobID, state, exitCode, duration):
            o.add("type", "job_finished"); o.add("time", now())
            o.add("job", jobID); o.add("state", state.rawValue); o.add("exit_code", Int64(exitCode))
            o.addRaw("duration", JobDuration.millis(duration))
        case let .warning(message):
            o.add("type", "warning"); o.add("time", now()); o.add("message", message)
        case let .service(alias, message):
            o.add("type", "service"); o.add("time", now()); o.add("alias", alias); o.add("message", message)
        }
        return o.finish()
    }
}

/// Builds one JSON object by hand, keys in the order added.
struct JSONLine {
    private var text = "{"

    private mutating func key(_ k: String) {
        if text.utf8.count > 1 { text += "," }
        text += "\""; text += k; text += "\":"
    }

    mutating func add(_ k: String, _ v: String) {
        key(k)
        text += "\""
        appendJSONEscaped(v, to: &text)
        text += "\""
    }

    mutating func add(_ k: String, _ v: Int64?) {
        key(k)
        text += v.map { String($0) } ?? "null"
    }

    mutating func add(_ k: String, _ v: Date) { add(k, LogTimestamp.format(v)) }

    /// A value that is already JSON text (a number formatted elsewhere).
    mutating func addRaw(_ k: String, _ json: String) {
        key(k)
        text += json
    }

    mutating func finish() -> String {
        text += "}\n"
        return text
    }
}
