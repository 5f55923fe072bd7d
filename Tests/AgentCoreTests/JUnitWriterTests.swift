import Foundation
import Testing
@testable import AgentCore

@Suite struct JUnitWriterTests {
    /// Output a build might print: colour codes, NUL, a bell, `]]>`, markup, CR.
    static let nastyLines = [
        "\u{1B}[31mred\u{1B}[0m and a bell \u{07}",
        "NUL here: \u{0} and a form feed \u{0C}",
        "cdata end ]]> and ]]]]><![CDATA[> nested",
        "<tag attr=\"q\"> & 'apostrophe' </tag>",
        "carriage\rreturn and non-characters \u{FFFE}\u{FFFF}",
        XMLText.sanitize(bytes: [0x62, 0x61, 0x64, 0x20, 0xFF, 0xFE, 0xC3, 0x28, 0xED, 0xA0, 0x80, 0x21]),
    ]

    static func steps() -> [JUnitStepResult] {
        [
            JUnitStepResult(name: "build", state: .succeeded, exitCode: 0, duration: .milliseconds(1500),
                            outputLines: ["compiling", "done"]),
            JUnitStepResult(name: "test \u{1B}[1m<unit>\u{1B}[0m", state: .failed, exitCode: 2,
                            duration: .seconds(3), outputLines: nastyLines),
            JUnitStepResult(name: "killed", state: .failed, signal: 9, duration: .seconds(1)),
            JUnitStepResult(name: "slow", state: .timedOut, exitCode: nil, duration: .seconds(60)),
            JUnitStepResult(name: "deploy", state: .skipped, message: "an earlier step failed"),
            JUnitStepResult(name: "agent-broke", state: .error, message: "cannot create container: EPERM"),
            JUnitStepResult(name: "stopped", state: .cancelled),
            JUnitStepResult(name: "", state: .pending),
        ]
    }

    @Test func jobStepsValidateAgainstStrictSchemaWithNastyOutput() throws {
        let report = JUnitReport.forJob(id: "job-1", steps: Self.steps())
        let xml = JUnitWriter(timestamp: Date(timeIntervalSince1970: 1_800_000_000), hostname: "ci host").render(report)
        let problems = try ReportsTestSupport.schemaProblems(xml)
        #expect(problems == nil, "xmllint: \(problems ?? "")")
        #expect(!xml.contains("]]>"))
        #expect(!xml.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" && $0 != "\t" })
        #expect(xml.contains("\u{241B}[31mred"))  // ESC shown as its control picture
        #expect(xml.contains("&#13;"))  // CR kept
        #expect(xml.contains("timestamp=\"2027-01-15T08:00:00\""))
    }

    @Test func failureCarriesExitStatusAndLastHundredLines() throws {
        let lines = (0..<150).map { "line \($0)" }
        let report = JUnitReport.forJob(id: "j", steps: [
            JUnitStepResult(name: "unit", state: .failed, exitCode: 2, outputLines: lines),
        ])
        guard case .failure(let problem) = report.suites[0].testCases[0].result else {
            Issue.record("expected a failure")
            return
        }
        #expect(problem.message == "exit status 2")
        #expect(problem.type == "exit-status")
        #expect(problem.text.hasPrefix("exit status 2\n[... 50 earlier lines cut ...]\nline 50\n"))
        #expect(problem.text.hasSuffix("line 149"))
        #expect(report.suites[0].systemOut.contains("=== step 1: unit (failed) ==="))
        let xml = JUnitWriter(hostname: "h").render(report)
        #expect(xml.contains("<failure message=\"exit status 2\" type=\"exit-status\">exit status 2\n"))
        #expect(try ReportsTestSupport.schemaProblems(xml) == nil)
    }

    @Test func mergedReportRecomputesCounts() throws {
        // The source claims wrong counts; ours must come from the cases.
        let source = """
        <?xml version="1.0"?>
        <testsuites tests="99">
          <testsuite name="math" tests="1" failures="0" errors="0" time="abc" timestamp="2026-01-02T03:04:05Z">
            <properties><property name="os" value="linux"/><property name="" value="dropped"/></properties>
            <testcase name="adds" classname="MathTests" time="0.5"/>
            <testcase name="divides" classname="MathTests" time="1,25">
              <failure message="expected 2" type="AssertionError">trace</failure>
              <system-out>divide output</system-out>
            </testcase>
            <testcase name="later" classname="MathTests"><skipped/></testcase>
          </testsuite>
          <testsuite name="io">
            <testcase name="reads" time="2"><error message="boom" type="IOError"/></testcase>
            <testcase name="writes" time="1e-3"/>
          </testsuite>
        </testsuites>
        """
        let parsed = JUnitParser.parse(data: Data(source.utf8), file: "reports/TEST-math.xml")
        #expect(parsed.problem == nil)
        let report = JUnitReport.forJob(id: "j", steps: [JUnitStepResult(name: "test", state: .succeeded, exitCode: 0)],
                                        reports: [parsed])
        #expect(report.summary == JUnitSummary(tests: 6, failures: 1, errors: 1, skipped: 1))
        let xml = JUnitWriter(hostname: "h").render(report)
        #expect(try ReportsTestSupport.schemaProblems(xml) == nil)
        #expect(xml.contains("<testsuite name=\"math\" package=\"math\" id=\"1\" timestamp=\"2026-01-02T03:04:05\""))
        #expect(xml.contains("tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\" time=\"1.750\""))
        #expect(xml.contains("<testsuite name=\"io\" package=\"io\" id=\"2\""))
        #expect(xml.contains("tests=\"2\" failures=\"0\" errors=\"1\" skipped=\"0\" time=\"2.001\""))
        #expect(xml.contains("<!-- tests=6 failures=1 errors=1 skipped=1"))
        #expect(xml.contains("--- MathTests.divides ---\ndivide output"))
        // Our own output reads back to the same totals.
        let again = JUnitParser.parse(data: Data(xml.utf8), file: "junit.xml")
        #expect(again.summary == report.summary)
        #expect(again.suites.map(\.name) == ["j", "math", "io"])
    }

    @Test func hugeOutputIsCutWithMarker() throws {
        let big = String(repeating: "0123456789abcdé\n", count: 200_000)  // ~3.4 MB
        var suite = JUnitSuite(name: "big", testCases: [
            JUnitTestCase(name: "t", classname: "c", result: .failure(JUnitProblem(message: "m", type: "t", text: big))),
        ])
        suite.systemOut = big
        let writer = JUnitWriter(hostname: "h")
        let xml = writer.render(JUnitReport(suites: [suite]))
        #expect(xml.utf8.count < writer.maxSystemOutBytes + writer.maxProblemTextBytes + 10_000)
        #expect(xml.contains(" bytes cut ...]"))
        #expect(try ReportsTestSupport.schemaProblems(xml) == nil)
    }

    @Test func emptyReportAndEmptyNamesAreStillValid() throws {
        let writer = JUnitWriter(hostname: "   ")
        #expect(try ReportsTestSupport.schemaProblems(writer.render(JUnitReport())) == nil)
        let odd = JUnitSuite(name: "  ", package: "", hostname: "\n", properties: [JUnitProperty(name: " ", value: "v")],
                             testCases: [JUnitTestCase(name: "", classname: "", time: .nan,
                                                       result: .error(JUnitProblem(message: nil, type: "")))])
        let xml = writer.render(JUnitReport(suites: [odd]))
        #expect(try ReportsTestSupport.schemaProblems(xml) == nil)
        #expect(xml.contains("hostname=\"localhost\""))
        #expect(xml.contains("time=\"0.000\""))
    }
}

@Suite struct JUnitXMLTextTests {
    @Test func sanitizeReplacesWhatXMLForbids() {
        #expect(XMLText.sanitize("a\u{0}b\u{1B}c\td\ne\rf") == "a\u{2400}b\u{241B}c\td\ne\rf")
        #expect(XMLText.sanitize("x\u{FFFE}y\u{FFFF}") == "x\u{FFFD}y\u{FFFD}")
        #expect(XMLText.sanitize(bytes: [0x61, 0xFF, 0x62]) == "a\u{FFFD}b")
        // A UTF-8-encoded lone surrogate (ED A0 80) is invalid UTF-8: replaced.
        #expect(!XMLText.sanitize(bytes: [0xED, 0xA0, 0x80]).unicodeScalars.contains { (0xD800...0xDFFF).contains($0.value) })
        #expect(XMLText.sanitize("plain ünïcode 🚀") == "plain ünïcode 🚀")
    }

    @Test func escaping() {
        #expect(XMLText.escapeText("a]]>b <&>") == "a]]&gt;b &lt;&amp;&gt;")
        #expect(XMLText.escapeAttribute("\"q\"\n\t'") == "&quot;q&quot;&#10;&#9;'")
    }

    @Test func clipKeepsHeadAndTailOnCharacterBoundaries() {
        let text = String(repeating: "é", count: 1000)  // 2000 bytes
        let clipped = XMLText.clip(text, maxBytes: 101)
        #expect(clipped.hasPrefix("éé"))
        #expect(clipped.hasSuffix("éé"))
        #expect(clipped.contains("bytes cut ...]"))
        #expect(!clipped.contains("\u{FFFD}"))
        #expect(XMLText.clip("short", maxBytes: 10) == "short")
    }

    @Test func numbersAndTimestamps() {
        #expect(JUnitWriter.decimal(1.23456) == "1.235")
        #expect(JUnitWriter.decimal(-1) == "0.000")
        #expect(JUnitWriter.decimal(.infinity) == "0.000")
        #expect(JUnitWriter.timestamp(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00")
        #expect(JUnitWriter.int(Int.max) == "2147483647")
    }
}
