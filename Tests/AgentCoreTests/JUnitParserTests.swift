import Foundation
import Testing
@testable import AgentCore

@Suite struct JUnitParserTests {
    @Test func singleTestsuiteRootWithMissingAttributes() {
        let xml = """
        <testsuite>
          <testcase name="a"/>
          <testcase classname="K" time="not-a-number"><skipped message="later"/></testcase>
          <testcase name="c" class="Legacy" time=" 2.5 "><failure>no message or type</failure></testcase>
          <system-out>suite out</system-out>
          <system-err><![CDATA[err <raw> ]]></system-err>
        </testsuite>
        """
        let report = JUnitParser.parse(data: Data(xml.utf8), file: "out/TEST-x.xml")
        #expect(report.problem == nil)
        #expect(report.suites.count == 1)
        let suite = report.suites[0]
        #expect(suite.name == "TEST-x")  // from the file name
        #expect(suite.testCases.map(\.name) == ["a", "(unnamed)", "c"])
        #expect(suite.testCases.map(\.classname) == ["TEST-x", "K", "Legacy"])
        #expect(suite.testCases.map(\.time) == [0, 0, 2.5])
        #expect(suite.testCases[1].result == .skipped(message: "later", text: ""))
        #expect(suite.testCases[2].result == .failure(JUnitProblem(message: nil, type: "failure", text: "no message or type")))
        #expect(suite.systemOut == "suite out\n")
        #expect(suite.systemErr == "err <raw> \n")
        #expect(report.summary == JUnitSummary(tests: 3, failures: 1, errors: 0, skipped: 1))
        #expect(report.summary.hasFailures)
    }

    @Test func malformedFileBecomesErrorCaseNamingFileAndPosition() throws {
        let xml = "<testsuites>\n  <testsuite name=\"a\">\n    <testcase name=\"x\">\n  </testsuite>\n"
        let report = JUnitParser.parse(data: Data(xml.utf8), file: "build/test-results/broken.xml")
        let problem = try #require(report.problem)
        #expect(problem.contains("build/test-results/broken.xml"))
        #expect(problem.contains("line "))
        #expect(problem.contains("column "))
        #expect(report.suites.count == 1)
        #expect(report.summary == JUnitSummary(tests: 1, failures: 0, errors: 1, skipped: 0))
        guard case .error(let e) = report.suites[0].testCases[0].result else {
            Issue.record("expected an error case")
            return
        }
        #expect(e.type == "MalformedReport")
        #expect(e.message?.contains("broken.xml") == true)
        // And it is writable as valid JUnit.
        #expect(try ReportsTestSupport.schemaProblems(JUnitWriter(hostname: "h").render(JUnitReport(suites: report.suites))) == nil)
    }

    @Test func notJUnitOrEmptyOrMissingIsAnErrorCase() {
        let html = JUnitParser.parse(data: Data("<html><body/></html>".utf8), file: "index.html")
        #expect(html.problem?.contains("root element is <html>") == true)
        let empty = JUnitParser.parse(data: Data(), file: "empty.xml")
        #expect(empty.problem != nil)
        #expect(empty.summary.errors == 1)
        let missing = JUnitParser.parse(contentsOf: "/nonexistent/report.xml", displayName: "report.xml")
        #expect(missing.problem?.contains("report.xml: cannot open") == true)
    }

    @Test func nestedSuitesAreFlattenedAndWrappersDropped() {
        let xml = """
        <testsuites>
          <testsuite name="outer">
            <testsuite name="inner1"><testcase name="a" classname="c"/></testsuite>
            <testsuite name="inner2"><testcase name="b" classname="c"/></testsuite>
          </testsuite>
          <testsuite name="flat"><testcase name="c" classname="c"/></testsuite>
        </testsuites>
        """
        let report = JUnitParser.parse(data: Data(xml.utf8), file: "r.xml")
        #expect(report.suites.map(\.name) == ["inner1", "inner2", "flat"])
        #expect(report.summary.tests == 3)
    }

    @Test func oneResultPerCaseErrorWins() throws {
        let xml = """
        <testsuite name="s">
          <testcase name="t" classname="c">
            <failure message="first" type="A">one</failure>
            <error message="second" type="B">two</error>
            <failure message="third" type="C">three</failure>
          </testcase>
        </testsuite>
        """
        let report = JUnitParser.parse(data: Data(xml.utf8), file: "r.xml")
        #expect(report.summary == JUnitSummary(tests: 1, failures: 0, errors: 1, skipped: 0))
        guard case .error(let e) = report.suites[0].testCases[0].result else {
            Issue.record("expected error")
            return
        }
        #expect(e.message == "second")
        #expect(e.text.contains("two"))
        #expect(e.text.contains("[also failure: first]"))
        #expect(e.text.contains("three"))
    }

    @Test func leniencyOnTimesAndTimestamps() throws {
        #expect(JUnitParser.seconds("1.5") == 1.5)
        #expect(JUnitParser.seconds("1,5") == 1.5)
        #expect(JUnitParser.seconds("1,234.5") == 1234.5)
        #expect(JUnitParser.seconds("0.25s") == 0.25)
        #expect(JUnitParser.seconds("-3") == 0)
        #expect(JUnitParser.seconds("NaN") == 0)
        #expect(JUnitParser.seconds(nil) == 0)
        let utc = try #require(JUnitParser.timestamp("2026-11-26T21:30:00"))
        #expect(JUnitWriter.timestamp(utc) == "2026-11-26T21:30:00")
        let zoned = try #require(JUnitParser.timestamp("2026-11-26T22:30:00.123+01:00"))
        #expect(JUnitWriter.timestamp(zoned) == "2026-11-26T21:30:00")
        #expect(JUnitParser.timestamp("yesterday") == nil)
    }

    @Test func readsFileFromDisk() throws {
        let dir = try ReportsTestSupport.scratch("junit-parse")
        defer { ReportsTestSupport.remove(dir) }
        try ReportsTestSupport.write("<testsuites><testsuite name=\"ok\"><testcase name=\"t\" classname=\"c\"/></testsuite></testsuites>",
                                     dir, "TEST-ok.xml")
        let report = JUnitParser.parse(contentsOf: dir + "/TEST-ok.xml", displayName: "TEST-ok.xml")
        #expect(report.problem == nil)
        #expect(report.file == "TEST-ok.xml")
        #expect(report.summary == JUnitSummary(tests: 1))
        #expect(!report.summary.hasFailures)
    }
}

@Suite struct JUnitParserMalformedTests {
    @Test(arguments: [
        ("<testsuite name=\"a\"><testcase name=\"x\">", "ends inside <testcase>"),
        ("<testsuite><testcase name=\"x\"></testsuite>", "mismatched end tag"),
        ("<testsuite/><extra/>", "extra content"),
        ("<testsuite name=\"a\" name=\"b\"/>", "attribute given twice"),
        ("<testsuite name=a/>", "line 1"),
    ])
    func truncatedOrBrokenFilesAreErrors(xml: String, expected: String) throws {
        let report = JUnitParser.parse(data: Data(xml.utf8), file: "r.xml")
        let problem = try #require(report.problem)
        #expect(problem.contains(expected), "\(problem)")
        #expect(problem.hasPrefix("malformed JUnit report r.xml: line "))
        #expect(report.summary.errors == 1)
    }
}

@Suite struct JUnitReportCollectionTests {
    @Test func parsesReportsSelectedByGlobs() throws {
        let dir = try ReportsTestSupport.scratch("junit-glob")
        defer { ReportsTestSupport.remove(dir) }
        try ReportsTestSupport.write("<testsuite name=\"a\"><testcase name=\"t\" classname=\"c\"/></testsuite>", dir, "build/test-results/a/TEST-a.xml")
        try ReportsTestSupport.write("<testsuite name=\"b\"><testcase name=\"t\" classname=\"c\"><failure/></testcase></testsuite>", dir, "build/test-results/b/TEST-b.xml")
        try ReportsTestSupport.write("not xml", dir, "build/test-results/c/TEST-c.xml")
        try ReportsTestSupport.write("<testsuite/>", dir, "build/other.xml")
        let reports = try JUnitParser.parseReports(in: dir, matching: ["build/test-results/**/*.xml"])
        #expect(reports.map(\.file) == ["build/test-results/a/TEST-a.xml", "build/test-results/b/TEST-b.xml",
                                        "build/test-results/c/TEST-c.xml"])
        let total = reports.reduce(JUnitSummary()) { $0 + $1.summary }
        #expect(total == JUnitSummary(tests: 3, failures: 1, errors: 1, skipped: 0))
        #expect(reports[2].problem?.contains("build/test-results/c/TEST-c.xml") == true)
    }
}
