import Foundation
import Testing
@testable import AgentCore

/// Behaviours that depend on how libxml2's streaming reader is driven (JUnitXMLReader):
/// errors it raises before handing out any node, what it refuses, and what it accepts.
@Suite struct JUnitParserLibxml2Tests {
    private func problem(_ xml: String) -> String? {
        JUnitParser.parse(data: Data(xml.utf8), file: "r.xml").problem
    }

    @Test func processingInstructionWithoutDataIsFine() {
        // The Foundation XMLParser-based parser crashed (strlen(NULL)) on `<?pi?>`.
        let report = JUnitParser.parse(data: Data("<testsuite name=\"s\"><?pi?><testcase name=\"t\"/></testsuite><?pi?>".utf8), file: "r.xml")
        #expect(report.problem == nil)
        #expect(report.summary.tests == 1)
    }

    @Test func wrongRootIsNamedEvenWhenTheDocumentIsAlsoBroken() {
        // libxml2 fails the read before handing out the root: the name comes from its tree.
        #expect(problem("<!DOCTYPE html>\n<html><br></html>")?.hasSuffix("root element is <html>, expected <testsuites> or <testsuite>") == true)
        #expect(problem("<html/><extra/>")?.contains("root element is <html>") == true)
    }

    @Test func truncationNamesTheInnermostOpenElement() {
        let p = problem("<testsuite>\n<testcase name=\"a\"/>\n<testcase name=\"b\"><failure>half")
        #expect(p?.contains("line 3, column ") == true, "\(p ?? "")")
        #expect(p?.hasSuffix("the document ends inside <failure>") == true, "\(p ?? "")")
    }

    @Test func namespaceErrorsAreRefusedWarningsAreNot() {
        #expect(problem("<testsuite><ns:testcase name=\"q\"/></testsuite>")?.contains("line 1, column 33: ") == true)
        #expect(problem("<?xml version=\"1.1\"?><testsuite><testcase name=\"q\"/></testsuite>") == nil)
        #expect(problem("<testsuite xmlns=\"relative\"><testcase name=\"q\"/></testsuite>") == nil)
    }

    @Test func entityDeclarationsAreRefusedNamingTheEntity() {
        let declared = JUnitParser.parse(data: Data("""
            <!DOCTYPE x [<!ENTITY e "EEE">]><testsuite><testcase name="t"><failure>a&e;b</failure></testcase></testsuite>
            """.utf8), file: "r.xml")
        #expect(declared.problem?.contains("declares the entity \"e\"") == true)
        guard case .error(let e) = declared.suites.first?.testCases.first?.result else {
            Issue.record("expected a MalformedReport error case")
            return
        }
        #expect(e.type == "MalformedReport")
        var lol = "<!DOCTYPE l [<!ENTITY l0 \"lol\">"
        for i in 1...9 { lol += "<!ENTITY l\(i) \"" + String(repeating: "&l\(i - 1);", count: 10) + "\">" }
        lol += "]><testsuite><testcase name=\"&l9;\"/></testsuite>"
        #expect(problem(lol) != nil)  // libxml2 may stop it first (its exponential guard)
        // A DOCTYPE without entities is still fine.
        #expect(problem("<!DOCTYPE testsuite><testsuite><testcase name=\"t\"/></testsuite>") == nil)
    }

    /// Linear amplification (the review's 1.6 MB report that cost 1.6 GB): refused before
    /// any attribute is expanded, streamed from a descriptor.
    @Test func linearAmplificationIsRefusedFromAFile() throws {
        let entity = String(repeating: "A", count: 3000)
        let refs = String(repeating: "&e;", count: 3000)
        var xml = "<!DOCTYPE t [<!ENTITY e \"\(entity)\">]><testsuite>"
        for i in 0..<100 { xml += "<testcase name=\"\(i)\(refs)\"/>" }
        xml += "</testsuite>"
        let path = NSTemporaryDirectory() + "amp-\(UUID().uuidString).xml"
        try Data(xml.utf8).write(to: URL(fileURLWithPath: path))
        defer { unlink(path) }
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        let r = JUnitParser.parse(fd: fd, file: "amp.xml")
        #expect(r.problem?.contains("declares the entity \"e\"") == true)
    }

    /// Attributes are redacted whole and then clipped, so a secret longer than the clip
    /// margin never survives in pieces.
    @Test func attributesAreRedactedBeforeTheyAreClipped() {
        let secret = String(repeating: "S3CR3T", count: 2000)  // 12 KB: longer than the clip
        let xml = "<testsuite><testcase name=\"x\(secret)y\"/></testsuite>"
        var state = JUnitReaderState(file: "r.xml", redact: { $0.replacingOccurrences(of: secret, with: "***") })
        #expect(JUnitXMLReader.read(Data(xml.utf8), into: &state) == nil)
        #expect(state.finishedSuites.first?.testCases.first?.name == "x***y")
        let long = String(repeating: "n", count: 100_000)
        var plain = JUnitReaderState(file: "r.xml")
        #expect(JUnitXMLReader.read(Data("<testsuite><testcase name=\"\(long)\"/></testsuite>".utf8), into: &plain) == nil)
        #expect((plain.finishedSuites.first?.testCases.first?.name.utf8.count ?? 0) <= JUnitReaderState.maxAttributeBytes + 64)
    }

    @Test func captureIsCutOnACharacterBoundary() throws {
        let head = String(repeating: "x", count: JUnitReaderState.maxCaptureBytes - 1)
        let xml = "<testsuite><testcase name=\"t\"><failure>" + head + "ééé</failure></testcase></testsuite>"
        let report = JUnitParser.parse(data: Data(xml.utf8), file: "r.xml")
        guard case .failure(let f) = report.suites.first?.testCases.first?.result else {
            Issue.record("expected a failure: \(report.problem ?? "")")
            return
        }
        #expect(f.text == head + "\n[... 6 bytes cut ...]")
    }

    @Test func libxml2LimitsAreExplained() {
        let deep = "<testsuite>" + String(repeating: "<a>", count: 300) + String(repeating: "</a>", count: 300) + "</testsuite>"
        #expect(problem(deep)?.contains("nested deeper than libxml2's limit") == true)
    }
}
