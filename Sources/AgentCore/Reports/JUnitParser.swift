import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

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
public enum JUnitParser {
    /// Files bigger than this are not parsed (they become an error case).
    public static let maxReportBytes = 64 * 1024 * 1024

    /// Reads and parses the report at `path`; `displayName` names it in errors.
    public static func parse(contentsOf path: String, displayName: String? = nil) -> JUnitParsedReport {
        let name = displayName ?? path
        guard let handle = FileHandle(forReadingAtPath: path) else {
            return failed(file: name, problem: "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { try? handle.close() }
        let data: Data
        do {
            data = try handle.read(upToCount: maxReportBytes + 1) ?? Data()
        } catch {
            return failed(file: name, problem: "cannot read: \(error.localizedDescription)")
        }
        guard data.count <= maxReportBytes else {
            return failed(file: name, problem: "larger than \(maxReportBytes / (1024 * 1024)) MiB")
        }
        return parse(data: data, file: name)
    }

    /// Parses report bytes; `file` names the report in suites and errors.
    public static func parse(data: Data, file: String) -> JUnitParsedReport {
        let parser = XMLParser(data: data)
        parser.shouldResolveExternalEntities = false
        parser.shouldProcessNamespaces = false
        let delegate = JUnitParserDelegate(file: file)
        parser.delegate = delegate
        let ok = parser.parse()
        if let problem = delegate.problem {
            return failed(file: file, problem: problem)
        }
        // On Linux `parse()` can return true after an error: check every signal.
        if !ok || delegate.error != nil || parser.parserError != nil {
            let line = delegate.errorLine ?? parser.lineNumber
            let column = delegate.errorColumn ?? parser.columnNumber
            var reason = describe(delegate.error ?? parser.parserError)
            if let unclosed = delegate.openElements.last, ((delegate.error ?? parser.parserError) as NSError?)?.code == 5 {
                reason = "the document ends inside <\(unclosed)>"  // libxml2 calls a truncated file "extra content"
            }
            return failed(file: file, problem: "line \(line), column \(column): \(reason)")
        }
        guard delegate.sawRoot else {
            return failed(file: file, problem: "empty document")
        }
        if let unclosed = delegate.openElements.last {
            return failed(file: file, problem: "line \(parser.lineNumber), column \(parser.columnNumber): "
                + "the document ends inside <\(unclosed)>")
        }
        return JUnitParsedReport(file: file, suites: delegate.finishedSuites, problem: nil)
    }

    /// The suite that stands in for an unusable report: one `<error>` case naming the file.
    static func failed(file: String, problem: String) -> JUnitParsedReport {
        let message = "malformed JUnit report \(file): \(problem)"
        let testCase = JUnitTestCase(name: file, classname: "junit-report", time: 0,
                                     result: .error(JUnitProblem(message: message, type: "MalformedReport", text: message)))
        let suite = JUnitSuite(name: file, package: "junit-report", testCases: [testCase])
        return JUnitParsedReport(file: file, suites: [suite], problem: message)
    }

    private static func describe(_ error: Error?) -> String {
        guard let error else { return "not well-formed XML" }
        let ns = error as NSError
        guard ns.domain == XMLParser.errorDomain else { return ns.localizedDescription }
        return (libxml2Messages[ns.code] ?? "not well-formed XML") + " (XML error \(ns.code))"
    }

    /// The libxml2 error codes (`xmlParserErrors`) FoundationXML passes through, for the
    /// mistakes truncated or hand-written reports usually have; the rest say "not well-formed".
    private static let libxml2Messages: [Int: String] = [
        4: "the document is empty", 5: "extra content after the root element",
        9: "invalid character (not UTF-8 or not allowed in XML)", 23: "entity reference without ';'",
        26: "undeclared entity", 38: "'<' inside an attribute value", 39: "attribute value not started",
        40: "attribute value not finished", 41: "attribute without a value", 42: "attribute given twice",
        45: "comment not finished", 63: "CDATA section not finished", 65: "space required",
        68: "name required", 73: "'>' expected", 76: "mismatched end tag", 77: "the document ends inside a tag",
        85: "elements not balanced",
    ]

    /// `time` attributes as tools write them: `1.5`, `1,5`, `1,234.5`, missing, or junk
    /// (junk, negative and non-finite values count as 0).
    static func seconds(_ text: String?) -> Double {
        guard var s = text?.trimmingCharacters(in: .whitespaces), !s.isEmpty else { return 0 }
        if s.contains(".") { s.removeAll { $0 == "," } } else { s = s.replacingOccurrences(of: ",", with: ".") }
        if s.hasSuffix("s") { s.removeLast() }  // "0.5s"
        guard let v = Double(s), v.isFinite, v >= 0 else { return 0 }
        return v
    }

    /// ISO 8601 timestamps with or without zone and fraction; a missing zone means UTC.
    static func timestamp(_ text: String?) -> Date? {
        guard let s = text?.trimmingCharacters(in: .whitespaces), s.count >= 19 else { return nil }
        let withZone = ISO8601DateFormatter()
        for options: ISO8601DateFormatter.Options in [[.withInternetDateTime, .withFractionalSeconds], [.withInternetDateTime]] {
            withZone.formatOptions = options
            if let d = withZone.date(from: s) { return d }
        }
        // No zone: read the first 19 characters as UTC.
        withZone.formatOptions = [.withInternetDateTime]
        return withZone.date(from: String(s.prefix(19)) + "Z")
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
