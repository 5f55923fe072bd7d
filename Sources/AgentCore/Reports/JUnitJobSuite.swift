import AgentSupport
import FoundationEssentials
import Glibc

/// What the runner knows about one finished (or skipped) step, for the job's JUnit suite.
public struct JUnitStepResult: Sendable, Equatable {
    public var name: String
    public var state: StepState
    public var exitCode: Int32?
    public var signal: Int32?
    public var duration: Duration
    /// The step's output lines, already redacted. Only the last `JUnitStepResult.tailLines`
    /// are used, so the runner may pass just its ring buffer of last lines.
    public var outputLines: [String]
    /// Why the step was skipped, the agent error, or why a step with exit status 0 failed
    /// (e.g. "reports: 2 failures, 1 error"). Overrides the default failure message.
    public var message: String?

    /// How many output lines go into `<failure>` and `<system-out>`.
    public static let tailLines = 100

    public init(name: String, state: StepState, exitCode: Int32? = nil, signal: Int32? = nil,
                duration: Duration = .zero, outputLines: [String] = [], message: String? = nil) {
        self.name = name
        self.state = state
        self.exitCode = exitCode
        self.signal = signal
        self.duration = duration
        self.outputLines = outputLines
        self.message = message
    }
}

extension JUnitReport {
    /// The job's report: one suite for the steps followed by the collected test reports'
    /// suites (names kept, counts recomputed by the writer).
    public static func forJob(id jobID: String, steps: [JUnitStepResult], reports: [JUnitParsedReport] = [],
                              timestamp: Date? = nil, hostname: String? = nil) -> JUnitReport {
        var suites = [JUnitSuite.forSteps(jobID: jobID, steps: steps, timestamp: timestamp, hostname: hostname)]
        for report in reports { suites += report.suites }
        return JUnitReport(suites: suites)
    }
}

extension JUnitSuite {
    /// The suite for a job's steps: `classname` is the job id, `name` the step name.
    public static func forSteps(jobID: String, steps: [JUnitStepResult], timestamp: Date? = nil,
                                hostname: String? = nil) -> JUnitSuite {
        var out = ""
        var cases: [JUnitTestCase] = []
        for (index, step) in steps.enumerated() {
            let tail = XMLText.tail(step.outputLines, count: JUnitStepResult.tailLines)
            cases.append(JUnitTestCase(name: step.name, classname: jobID, time: step.duration.junitSeconds,
                                       result: result(for: step, tail: tail)))
            out += "=== step \(index + 1): \(step.name) (\(step.state.rawValue)) ===\n"
            if !tail.isEmpty { out += tail + "\n" }
        }
        return JUnitSuite(name: jobID, package: jobID, timestamp: timestamp, hostname: hostname,
                          properties: [JUnitProperty(name: "agent.version", value: AgentVersion.current)],
                          testCases: cases, systemOut: out)
    }

    private static func result(for step: JUnitStepResult, tail: String) -> JUnitTestCase.Result {
        let status: String
        if let signal = step.signal {
            status = "killed by signal \(signal)"
        } else if let code = step.exitCode {
            status = "exit status \(code)"
        } else {
            status = "no exit status"
        }
        func text(_ headline: String) -> String { tail.isEmpty ? headline : headline + "\n" + tail }
        switch step.state {
        case .succeeded:
            return .passed
        case .failed:
            let message = step.message ?? status
            let type = step.signal != nil ? "signal" : (step.exitCode ?? 0) != 0 ? "exit-status" : "step-failed"
            return .failure(JUnitProblem(message: message, type: type, text: text(message == status ? status : "\(message) (\(status))")))
        case .timedOut:
            let message = step.message ?? "timed out"
            return .failure(JUnitProblem(message: message, type: "timeout", text: text("\(message) (\(status))")))
        case .cancelled:
            let message = step.message ?? "cancelled"
            return .error(JUnitProblem(message: message, type: "cancelled", text: text(message)))
        case .error:
            let message = step.message ?? "agent error"
            return .error(JUnitProblem(message: message, type: "agent-error", text: text(message)))
        case .skipped:
            return .skipped(message: step.message ?? "skipped")
        case .pending, .running:
            return .skipped(message: step.message ?? "not run")
        }
    }
}

extension Duration {
    /// Seconds as a Double (for JUnit `time`).
    var junitSeconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}
