import AgentSupport
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// Renders a `JUnitReport` as a `<testsuites>` document valid against the strict Ant
/// schema (`shared/fixtures/junit/JUnit.xsd`):
/// - every `<testsuite>` has `name`, `package`, `id` (0, 1, ...), `timestamp` (UTC,
///   `yyyy-MM-ddTHH:mm:ss` with no zone, as the schema's pattern demands), `hostname`,
///   `tests`, `failures`, `errors`, `skipped`, decimal `time`, then `<properties>`, the
///   cases, `<system-out>` and `<system-err>` (all required, in that order);
/// - every `<testcase>` has `name`, `classname`, decimal `time` and at most one of
///   `<failure>`, `<error>`, `<skipped>`;
/// - `<testsuites>` may carry no attributes, so the totals go into a leading comment
///   (and `JUnitReport.summary` for machines).
/// Text is sanitized and escaped by `XMLText`; long texts are clipped with a marker.
///
/// With `redact` set, the report is redacted before anything else touches its text, so
/// clipping works on redacted text and escaping never produces a form of a secret the
/// matcher does not know. Each field is redacted once more after clipping, sanitizing and
/// whitespace collapsing (still before escaping), in case those steps turned text into
/// a secret (`a\tb` collapsed to `a b`).
public struct JUnitWriter: Sendable {
    /// Size limits (UTF-8 bytes) for text that comes from build output or foreign reports.
    public var maxProblemTextBytes = 64 * 1024
    public var maxSystemOutBytes = 1024 * 1024
    public var maxAttributeBytes = 4 * 1024
    /// Used for suites without a timestamp; defaults to now.
    public var timestamp: Date
    /// Used for suites without a host name; defaults to this machine's name.
    public var hostname: String
    /// Replaces secrets in a string (the job's matcher); nil writes the text as it is.
    public var redact: (@Sendable (String) -> String)?

    public init(timestamp: Date = Date(), hostname: String? = nil) {
        self.timestamp = timestamp
        self.hostname = hostname ?? JUnitWriter.localHostname()
    }

    /// The document as UTF-8 text.
    public func render(_ report: JUnitReport) -> String {
        let report = redact.map { report.redacted(by: $0) } ?? report
        let summary = report.summary
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        xml += "<!-- tests=\(summary.tests) failures=\(summary.failures) errors=\(summary.errors)"
        xml += " skipped=\(summary.skipped) time=\(Self.decimal(report.suites.reduce(0) { $0 + $1.time })) -->\n"
        xml += "<testsuites>\n"
        for (id, suite) in report.suites.enumerated() {
            render(suite, id: id, into: &xml)
        }
        xml += "</testsuites>\n"
        return xml
    }

    private func render(_ suite: JUnitSuite, id: Int, into xml: inout String) {
        let name = collapse(suite.name).isEmpty ? "(unnamed suite)" : collapse(suite.name)
        xml += "  <testsuite name=\"\(token(name, fallback: ""))\""
        xml += " package=\"\(token(suite.package ?? name, fallback: name))\" id=\"\(id)\""
        xml += " timestamp=\"\(Self.timestamp(suite.timestamp ?? timestamp))\""
        xml += " hostname=\"\(token(suite.hostname ?? "", fallback: collapse(hostname).isEmpty ? "localhost" : hostname))\""
        xml += " tests=\"\(Self.int(suite.tests))\" failures=\"\(Self.int(suite.failures))\""
        xml += " errors=\"\(Self.int(suite.errors))\" skipped=\"\(Self.int(suite.skipped))\""
        xml += " time=\"\(Self.decimal(suite.time))\">\n"
        if suite.properties.isEmpty {
            xml += "    <properties/>\n"
        } else {
            xml += "    <properties>\n"
            for property in suite.properties {
                let pname = token(property.name, fallback: "")
                guard !pname.isEmpty else { continue }  // the schema wants a non-empty name
                xml += "      <property name=\"\(pname)\" value=\"\(attribute(property.value))\"/>\n"
            }
            xml += "    </properties>\n"
        }
        for testCase in suite.testCases {
            render(testCase, suiteName: name, into: &xml)
        }
        xml += "    <system-out>\(XMLText.escapeText(prepare(suite.systemOut, maxBytes: maxSystemOutBytes)))</system-out>\n"
        xml += "    <system-err>\(XMLText.escapeText(prepare(suite.systemErr, maxBytes: maxSystemOutBytes)))</system-err>\n"
        xml += "  </testsuite>\n"
    }

    private func render(_ testCase: JUnitTestCase, suiteName: String, into xml: inout String) {
        xml += "    <testcase name=\"\(token(testCase.name, fallback: "(unnamed)"))\""
        xml += " classname=\"\(token(testCase.classname, fallback: suiteName))\""
        xml += " time=\"\(Self.decimal(testCase.time))\""
        switch testCase.result {
        case .passed:
            xml += "/>\n"
            return
        case .skipped(let message, let text):
            xml += ">\n      <skipped"
            if let message { xml += " message=\"\(attribute(message))\"" }
            xml += text.isEmpty ? "/>\n" : ">\(body(text))</skipped>\n"
        case .failure(let problem):
            xml += ">\n"
            render(problem, element: "failure", into: &xml)
        case .error(let problem):
            xml += ">\n"
            render(problem, element: "error", into: &xml)
        }
        xml += "    </testcase>\n"
    }

    private func render(_ problem: JUnitProblem, element: String, into xml: inout String) {
        xml += "      <\(element)"
        if let message = problem.message { xml += " message=\"\(attribute(message))\"" }
        xml += " type=\"\(attribute(problem.type.isEmpty ? element : problem.type))\">"
        xml += body(problem.text)
        xml += "</\(element)>\n"
    }

    private func body(_ text: String) -> String {
        XMLText.escapeText(prepare(text, maxBytes: maxProblemTextBytes))
    }

    private func attribute(_ text: String) -> String {
        XMLText.escapeAttribute(prepare(text, maxBytes: maxAttributeBytes))
    }

    /// Clipped and sanitized text of an (already redacted) field, redacted again: the
    /// clip marker and the control pictures are new text next to old text.
    private func prepare(_ text: String, maxBytes: Int) -> String {
        again(XMLText.sanitize(XMLText.clip(text, maxBytes: maxBytes)))
    }

    /// The second redaction pass, on text that is about to be escaped.
    private func again(_ text: String) -> String {
        redact.map { $0(text) } ?? text
    }

    /// An `xs:token` value: the schema collapses whitespace, so we do it ourselves (what a
    /// reader sees is then what we wrote); `fallback` when nothing is left.
    private func token(_ text: String, fallback: String) -> String {
        let collapsed = collapse(text)
        return XMLText.escapeAttribute(collapsed.isEmpty ? collapse(fallback) : collapsed)
    }

    private func collapse(_ text: String) -> String {
        again(XMLText.sanitize(XMLText.clip(text, maxBytes: maxAttributeBytes))
            .split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" })
            .joined(separator: " "))
    }

    /// `xs:int`: counts never exceed Int32 in practice, but clamp rather than emit an invalid value.
    static func int(_ n: Int) -> String { String(min(max(n, 0), Int(Int32.max))) }

    /// `xs:decimal` with millisecond precision; never an exponent, NaN or a negative time.
    static func decimal(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds > 0 else { return "0.000" }
        return fixedPoint(min(seconds, 1e12), decimals: 3)
    }

    /// `yyyy-MM-ddTHH:mm:ss` in UTC (the schema forbids a zone designator).
    static func timestamp(_ date: Date) -> String {
        var t = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&t, &parts)
        let year = min(max(Int(parts.tm_year) + 1900, 0), 9999)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let yyyy = String(repeating: "0", count: max(0, 4 - "\(year)".count)) + "\(year)"
        return "\(yyyy)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))"
    }

    /// This machine's host name, or `localhost` (as the schema suggests) when unknown.
    public static func localHostname() -> String {
        var buffer = [UInt8](repeating: 0, count: 256)
        let rc = buffer.withUnsafeMutableBufferPointer { b in
            b.baseAddress!.withMemoryRebound(to: CChar.self, capacity: b.count) { gethostname($0, b.count - 1) }
        }
        guard rc == 0 else { return "localhost" }
        let name = String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self)
        return name.isEmpty ? "localhost" : name
    }
}
