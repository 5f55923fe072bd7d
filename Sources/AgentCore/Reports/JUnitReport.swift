import AgentSupport
import FoundationEssentials
import Glibc

/// A JUnit report: the job's own suite (one test case per step) plus the suites of
/// every collected test report. `JUnitWriter` turns it into `junit.xml`.
///
/// Counts and times are never stored: they are computed from the test cases, so a merged
/// report cannot disagree with itself whatever the source files claimed.
public struct JUnitReport: Sendable, Equatable {
    public var suites: [JUnitSuite]

    public init(suites: [JUnitSuite] = []) {
        self.suites = suites
    }

    /// Totals over all suites.
    public var summary: JUnitSummary { JUnitSummary(suites: suites) }
}

/// One `<testsuite>`.
public struct JUnitSuite: Sendable, Equatable {
    /// Suite name as the tool wrote it (written as `name`, never empty in the output).
    public var name: String
    /// The `package` attribute of an aggregated suite; defaults to the name.
    public var package: String?
    /// When the suite ran; the writer uses the report's timestamp when nil.
    public var timestamp: Date?
    /// Where it ran; the writer uses the agent's host name when nil.
    public var hostname: String?
    public var properties: [JUnitProperty]
    public var testCases: [JUnitTestCase]
    /// The schema has no per-case output, so per-case `system-out` of source reports is
    /// gathered here, each part headed by the case's name.
    public var systemOut: String
    public var systemErr: String

    public init(name: String, package: String? = nil, timestamp: Date? = nil, hostname: String? = nil,
                properties: [JUnitProperty] = [], testCases: [JUnitTestCase] = [],
                systemOut: String = "", systemErr: String = "") {
        self.name = name
        self.package = package
        self.timestamp = timestamp
        self.hostname = hostname
        self.properties = properties
        self.testCases = testCases
        self.systemOut = systemOut
        self.systemErr = systemErr
    }

    /// Cases that were counted but not kept (past the step's `reports.maxCases`): a report
    /// of millions of tiny cases must not cost the agent several times its size.
    public var omitted = JUnitSummary()
    /// The summed time of the omitted cases (seconds).
    public var omittedTime: Double = 0

    public var tests: Int { testCases.count + omitted.tests }
    public var failures: Int { testCases.count(where: { if case .failure = $0.result { true } else { false } }) + omitted.failures }
    public var errors: Int { testCases.count(where: { if case .error = $0.result { true } else { false } }) + omitted.errors }
    public var skipped: Int { testCases.count(where: { if case .skipped = $0.result { true } else { false } }) + omitted.skipped }
    /// The sum of the case times (seconds).
    public var time: Double { testCases.reduce(omittedTime) { $0 + max($1.time, 0) } }
}

/// One `<property name value>` of a suite.
public struct JUnitProperty: Sendable, Equatable {
    public var name: String
    public var value: String
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// One `<testcase>`. The strict schema allows at most one of failure, error or skipped.
public struct JUnitTestCase: Sendable, Equatable {
    public enum Result: Sendable, Equatable {
        case passed
        case skipped(message: String?, text: String = "")
        case failure(JUnitProblem)
        case error(JUnitProblem)
    }

    public var name: String
    public var classname: String
    /// Seconds; negative or non-finite values are written as 0.
    public var time: Double
    public var result: Result

    public init(name: String, classname: String, time: Double = 0, result: Result = .passed) {
        self.name = name
        self.classname = classname
        self.time = time
        self.result = result
    }
}

/// The content of a `<failure>` or `<error>`.
public struct JUnitProblem: Sendable, Equatable {
    public var message: String?
    /// Required by the schema; e.g. `exit-status`, an exception class name.
    public var type: String
    /// Free text, e.g. a stack trace or the last lines of a step's output.
    public var text: String

    public init(message: String?, type: String, text: String = "") {
        self.message = message
        self.type = type
        self.text = text
    }
}

/// Totals of a report, for status.json and for deciding whether a test step failed.
public struct JUnitSummary: Sendable, Equatable, Codable {
    public var tests: Int
    public var failures: Int
    public var errors: Int
    public var skipped: Int

    public init(tests: Int = 0, failures: Int = 0, errors: Int = 0, skipped: Int = 0) {
        self.tests = tests
        self.failures = failures
        self.errors = errors
        self.skipped = skipped
    }

    public init(suites: [JUnitSuite]) {
        self.init()
        for suite in suites {
            tests += suite.tests
            failures += suite.failures
            errors += suite.errors
            skipped += suite.skipped
        }
    }

    public var passed: Int { tests - failures - errors - skipped }

    /// A test step fails on its reports when this is true (unless `fail_on_report_failures: false`).
    public var hasFailures: Bool { failures + errors > 0 }

    public static func + (a: JUnitSummary, b: JUnitSummary) -> JUnitSummary {
        JUnitSummary(tests: a.tests + b.tests, failures: a.failures + b.failures,
                     errors: a.errors + b.errors, skipped: a.skipped + b.skipped)
    }
}

/// Redaction of a JUnit model before it is rendered.
///
/// Test reports are untrusted: a test may print a secret into a failure message, a test
/// name or its `system-out`. The reader has already decoded XML entities, so the parsed
/// strings hold the secret as it is (`p&ss<w0rd`, not `p&amp;ss&lt;w0rd`), which is the
/// form the job's matcher knows. Redacting here, before `JUnitWriter` clips, sanitizes
/// and escapes, means no later transformation can hide a secret from the matcher (an
/// escaped `&amp;` form) or cut it in half (the clip marker lands inside `***` at worst).
extension JUnitReport {
    /// The report with every string (suite, case and class names, packages, host names,
    /// properties, messages, types, texts, `system-out` and `system-err`) passed through
    /// `redact`. Counts and times are not text and stay as they are.
    public func redacted(by redact: (String) -> String) -> JUnitReport {
        JUnitReport(suites: suites.map { $0.redacted(by: redact) })
    }
}

extension JUnitSuite {
    /// The suite with every string passed through `redact` (see `JUnitReport.redacted(by:)`).
    public func redacted(by redact: (String) -> String) -> JUnitSuite {
        var out = self
        out.name = redact(name)
        out.package = package.map(redact)
        out.hostname = hostname.map(redact)
        out.properties = properties.map { JUnitProperty(name: redact($0.name), value: redact($0.value)) }
        out.testCases = testCases.map { $0.redacted(by: redact) }
        out.systemOut = redact(systemOut)
        out.systemErr = redact(systemErr)
        return out
    }
}

extension JUnitTestCase {
    /// The case with its names and its result's texts passed through `redact`.
    public func redacted(by redact: (String) -> String) -> JUnitTestCase {
        var out = self
        out.name = redact(name)
        out.classname = redact(classname)
        switch result {
        case .passed:
            break
        case .skipped(let message, let text):
            out.result = .skipped(message: message.map(redact), text: redact(text))
        case .failure(let problem):
            out.result = .failure(problem.redacted(by: redact))
        case .error(let problem):
            out.result = .error(problem.redacted(by: redact))
        }
        return out
    }
}

extension JUnitProblem {
    /// The problem with its message, type and text passed through `redact`.
    public func redacted(by redact: (String) -> String) -> JUnitProblem {
        JUnitProblem(message: message.map(redact), type: redact(type), text: redact(text))
    }
}
