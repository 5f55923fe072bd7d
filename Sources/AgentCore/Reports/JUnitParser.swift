import AgentSupport
import FoundationEssentials
import Glibc

/// One collected test report: its suites, or (when it could not be read) a single suite
/// with one `<error>` case naming the file and the problem.
public struct JUnitParsedReport: Sendable, Equatable {
    /// The report as the user should see it named (e.g. `build/test-results/TEST-a.xml`).
    public var file: String
    public var suites: [JUnitSuite]
    /// Why the file could not be used, if it could not; `suites` then holds the error case.
    public var problem: String?

    public var summary: JUnitSummary { JUnitSummary(suites: suites) }
}

/// Reads JUnit XML as common tools write it (Ant, Maven Surefire, Gradle, pytest, Jest,
/// go-junit-report, ...): a root `<testsuites>` or a single `<testsuite>`, nested suites
/// flattened, missing attributes defaulted, non-decimal times read leniently. Never
/// throws: a bad file becomes an error case, so one broken report cannot hide the others.
///
/// The XML is read by libxml2's streaming reader (`JUnitXMLReader`); what the elements
/// mean is `JUnitReaderState`. Only FoundationEssentials and Glibc are used here, so the
/// agent does not pay for loading Foundation (or its XML module) at start-up.
public enum JUnitParser {
    /// Files bigger than this are not parsed (they become an error case).
    public static let maxReportBytes = 64 * 1024 * 1024

    /// Reads and parses the report at `path`; `displayName` names it in errors.
    public static func parse(contentsOf path: String, displayName: String? = nil) -> JUnitParsedReport {
        let name = displayName ?? path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            return failed(file: name, problem: "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        // One byte over the cap is enough to know the file is too big, without reading it all.
        guard let bytes = readUpTo(fd, limit: maxReportBytes + 1) else {
            return failed(file: name, problem: "cannot read: \(String(cString: strerror(errno)))")
        }
        return parse(data: Data(bytes), file: name)
    }

    /// Parses the report open at `fd` (a regular file, not closed here) without reading it
    /// into memory: libxml2 pulls it in small pieces. `redact` is applied to every attribute
    /// and text before it is clipped (see `JUnitReaderState`). The caller checks the size.
    static func parse(fd: Int32, file: String, redact: @escaping (String) -> String = { $0 },
                      caseBudget: Int = .max) -> JUnitParsedReport {
        var state = JUnitReaderState(file: file, redact: redact, caseBudget: caseBudget)
        if let problem = JUnitXMLReader.read(fd: fd, into: &state) {
            return failed(file: file, problem: problem)
        }
        guard state.sawRoot else {
            return failed(file: file, problem: "empty document")
        }
        return JUnitParsedReport(file: file, suites: state.finishedSuites, problem: nil)
    }

    /// Parses report bytes; `file` names the report in suites and errors.
    public static func parse(data: Data, file: String) -> JUnitParsedReport {
        guard data.count <= maxReportBytes else {
            return failed(file: file, problem: "larger than \(maxReportBytes / (1024 * 1024)) MiB")
        }
        // libxml2 calls nothing-but-white-space "Start tag expected" with a position; a report
        // that is empty is easier to recognise as such.
        guard data.contains(where: { !isXMLSpace($0) }) else {
            return failed(file: file, problem: "empty document")
        }
        var state = JUnitReaderState(file: file)
        if let problem = JUnitXMLReader.read(data, into: &state) {
            return failed(file: file, problem: problem)
        }
        guard state.sawRoot else {
            return failed(file: file, problem: "empty document")
        }
        return JUnitParsedReport(file: file, suites: state.finishedSuites, problem: nil)
    }

    /// The suite that stands in for an unusable report: one `<error>` case naming the file.
    static func failed(file: String, problem: String) -> JUnitParsedReport {
        let message = "malformed JUnit report \(file): \(problem)"
        let testCase = JUnitTestCase(name: file, classname: "junit-report", time: 0,
                                     result: .error(JUnitProblem(message: message, type: "MalformedReport", text: message)))
        let suite = JUnitSuite(name: file, package: "junit-report", testCases: [testCase])
        return JUnitParsedReport(file: file, suites: [suite], problem: message)
    }

    /// `time` attributes as tools write them: `1.5`, `1,5`, `1,234.5`, missing, or junk
    /// (junk, negative and non-finite values count as 0).
    static func seconds(_ text: String?) -> Double {
        guard var s = text?.trimmingWhitespace(), !s.isEmpty else { return 0 }
        if s.contains(".") { s.removeAll { $0 == "," } } else { s = String(s.map { $0 == "," ? "." : $0 }) }
        if s.hasSuffix("s") { s.removeLast() }  // "0.5s"
        guard let v = Double(s), v.isFinite, v >= 0 else { return 0 }
        return v
    }

    /// ISO 8601 timestamps with or without zone and fraction; a missing zone means UTC.
    static func timestamp(_ text: String?) -> Date? {
        guard let s = text?.trimmingWhitespace(), s.count >= 19 else { return nil }
        for style in [withFraction, withoutFraction] {
            if let d = try? style.parse(s) { return d }
        }
        // No zone (or something after the seconds we do not read): the first 19 characters as UTC.
        return try? withoutFraction.parse(String(s.prefix(19)) + "Z")
    }

    // `Date.ISO8601FormatStyle` is FoundationEssentials' ISO 8601 reader (the old
    // ISO8601DateFormatter is Foundation only); its defaults are the internet date-time
    // form `2026-11-26T21:30:00Z` with a zone, and GMT.
    private static let withFraction = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
    private static let withoutFraction = Date.ISO8601FormatStyle()

    /// Reads at most `limit` bytes (fewer at end of file). Nil on a read error (errno set).
    /// The four characters XML counts as white space.
    private static func isXMLSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }
}

extension JUnitParser {
    /// Parses every report that `patterns` (relative globs, see `GlobPattern`) select under
    /// `directory`, in path order; each is named by its relative path. A pattern that
    /// selects nothing adds nothing (the caller decides whether that is worth a warning).
    public static func parseReports(in directory: String, matching patterns: [String]) throws -> [JUnitParsedReport] {
        try GlobSearch.regularFiles(in: directory, matching: patterns).map { relative in
            parse(contentsOf: directory + "/" + relative, displayName: relative)
        }
    }
}
