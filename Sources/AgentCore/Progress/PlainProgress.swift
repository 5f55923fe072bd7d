import AgentSupport
import FoundationEssentials
import Glibc
import Synchronization

/// `--progress plain`: BuildKit's plain output, one line per event, nothing redrawn.
///
/// ```
/// #2 [build 2/3] make -j2
/// #2 0.512 cc -c main.c
/// #2 ERROR: exit status 2
/// ------
///  > [build 2/3] make -j2:
/// make: *** [Makefile:3: all] Error 1
/// ------
/// ```
/// Steps are numbered from 1 (`#index+1`); output lines carry seconds since the step started.
/// Everything a job controls (output lines, step names and commands, reasons) goes through
/// `TerminalText.escaped`, so control characters show as `\x1b` and are never interpreted.
public final class PlainProgress: ProgressRenderer {
    /// How many of a failed step's last lines are repeated between the `------` rules.
    public static let failureContextLines = 10

    private let output: any ProgressOutput
    /// Step headers by index, for the failure summary.
    private let headers = Mutex<[Int: String]>([:])

    public init(output: any ProgressOutput) {
        self.output = output
    }

    public func handle(_ event: ProgressEvent) {
        if let text = render(event) { output.write(text) }
    }

    /// One write for the whole batch.
    public func handle(batch events: [ProgressEvent]) {
        var text = ""
        for event in events { if let t = render(event) { text += t } }
        if !text.isEmpty { output.write(text) }
    }

    public func finish() {}

    /// The text for one event (nil when plain mode shows nothing for it).
    func render(_ event: ProgressEvent) -> String? {
        switch event {
        case .jobStarted:
            return nil
        case let .stepStarted(index, total, name, command, _):
            let header = TerminalText.escaped("[\(name) \(index + 1)/\(total)] \(Self.oneLine(command))")
            headers.withLock { $0[index] = header }
            return "#\(index + 1) \(header)\n"
        case let .stepOutput(index, _, line, elapsed):
            return "#\(index + 1) \(JobDuration.millis(elapsed)) \(TerminalText.escaped(line))\n"
        case let .stepWaiting(index, reason):
            return "#\(index + 1) waiting: \(TerminalText.escaped(reason))\n"
        case let .stepFinished(index, _, state, exitCode, signal, duration, lastLines):
            let n = "#\(index + 1)"
            switch state {
            case .succeeded, .pending, .running:
                return "\(n) DONE \(JobDuration.tenths(duration))\n\n"
            case .skipped:
                return "\(n) SKIPPED\n\n"
            case .cancelled:
                return "\(n) CANCELED\n\n"
            case .failed, .timedOut, .error:
                let reason = Self.failureReason(state: state, exitCode: exitCode, signal: signal)
                var text = "\(n) ERROR: \(reason)\n"
                let header = headers.withLock { $0[index] } ?? "#\(index + 1)"
                text += "------\n > \(header):\n"
                for line in lastLines.suffix(Self.failureContextLines) { text += TerminalText.escaped(line) + "\n" }
                text += "------\n\n"
                return text
            }
        case let .stepSkipped(index, total, name, reason):
            let why = reason.isEmpty ? "" : " (\(reason))"
            return TerminalText.escaped("#\(index + 1) [\(name) \(index + 1)/\(total)]") + "\n#\(index + 1) SKIPPED\(TerminalText.escaped(why))\n\n"
        case let .jobFinished(jobID, state, exitCode, duration):
            return "job \(jobID): \(state.rawValue) in \(JobDuration.tenths(duration)) (exit code \(exitCode))\n"
        case let .warning(message):
            return "WARNING: \(TerminalText.escaped(message))\n"
        case let .service(alias, message):
            return "service \(TerminalText.escaped(alias)): \(TerminalText.escaped(message))\n"
        }
    }

    /// `exit status 2`, `timed out`, `killed by signal 9`: why a step did not succeed.
    public static func failureReason(state: StepState, exitCode: Int32?, signal: Int32?) -> String {
        switch state {
        case .timedOut: return "timed out"
        case .cancelled: return "canceled"
        case .error: return "the agent could not run this step"
        default:
            if let signal { return "killed by signal \(signal)" }
            if let exitCode { return "exit status \(exitCode)" }
            return "failed"
        }
    }

    /// Multi-line shell scripts show as their first line followed by `...`.
    static func oneLine(_ command: String) -> String {
        let trimmed = command.trimmingWhitespaceAndNewlines()
        guard let nl = trimmed.firstIndex(of: "\n") else { return trimmed }
        return trimmed[..<nl].trimmingWhitespace() + " ..."
    }
}
