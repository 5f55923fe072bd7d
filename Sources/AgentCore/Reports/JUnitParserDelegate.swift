import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// The SAX side of `JUnitParser`. Used by one parse on one thread, then read.
final class JUnitParserDelegate: NSObject, XMLParserDelegate {
    /// Text kept per element while parsing; the writer clips further.
    static let maxCaptureBytes = 4 * 1024 * 1024

    private enum Capture {
        case none
        case problem(kind: String, message: String?, type: String?)
        case caseOut, caseErr, suiteOut, suiteErr
    }

    private let file: String
    private(set) var sawRoot = false
    /// Set when the document is XML but not JUnit (e.g. the wrong root element).
    private(set) var problem: String?
    private(set) var error: Error?
    private(set) var errorLine: Int?
    private(set) var errorColumn: Int?

    /// Suites in document (opening) order; nil while still open.
    private var slots: [JUnitSuite?] = []
    private var open: [(slot: Int, suite: JUnitSuite, hasChildren: Bool)] = []
    private var currentCase: JUnitTestCase?
    private var caseProblems: [(kind: String, problem: JUnitProblem)] = []
    /// Names of the elements open right now: libxml2 through FoundationXML on Linux
    /// reports no error for a document that just stops, so the parser checks this is empty.
    private(set) var openElements: [String] = []
    private var capture = Capture.none
    private var text = ""
    private var textBytes = 0
    private var droppedBytes = 0

    init(file: String) {
        self.file = file
    }

    /// The parsed suites; containers that only held other suites are left out.
    var finishedSuites: [JUnitSuite] { slots.compactMap { $0 } }

    private var defaultSuiteName: String {
        let base = file.lastPathComponent
        return base.hasSuffix(".xml") ? String(base.dropLast(4)) : base
    }

    func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
                qualifiedName qName: String?, attributes: [String: String] = [:]) {
        openElements.append(elementName)
        if !sawRoot {
            sawRoot = true
            guard elementName == "testsuites" || elementName == "testsuite" else {
                problem = "root element is <\(elementName)>, expected <testsuites> or <testsuite>"
                parser.abortParsing()
                return
            }
        }
        switch elementName {
        case "testsuite":
            if !open.isEmpty { open[open.count - 1].hasChildren = true }
            let suite = JUnitSuite(name: attributes["name"] ?? defaultSuiteName, package: attributes["package"],
                                   timestamp: JUnitParser.timestamp(attributes["timestamp"]),
                                   hostname: attributes["hostname"])
            slots.append(nil)
            open.append((slots.count - 1, suite, false))
        case "property" where currentCase == nil && !open.isEmpty:
            if let name = attributes["name"] {
                open[open.count - 1].suite.properties.append(JUnitProperty(name: name, value: attributes["value"] ?? ""))
            }
        case "testcase":
            if open.isEmpty {
                // Some tools put cases straight under <testsuites>: give them a suite.
                slots.append(nil)
                open.append((slots.count - 1, JUnitSuite(name: defaultSuiteName), false))
            }
            let suiteName = open[open.count - 1].suite.name
            currentCase = JUnitTestCase(name: attributes["name"] ?? "(unnamed)",
                                        classname: attributes["classname"] ?? attributes["class"] ?? suiteName,
                                        time: JUnitParser.seconds(attributes["time"]))
            caseProblems = []
        case "failure", "error", "skipped":
            guard currentCase != nil else { break }
            startCapture(.problem(kind: elementName, message: attributes["message"], type: attributes["type"]))
        case "system-out":
            startCapture(currentCase != nil ? .caseOut : .suiteOut)
        case "system-err":
            startCapture(currentCase != nil ? .caseErr : .suiteErr)
        default:
            break  // unknown elements (rerunFailure, properties in cases, ...) are ignored
        }
    }

    func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?,
                qualifiedName qName: String?) {
        _ = openElements.popLast()
        switch elementName {
        case "testsuite":
            guard let last = open.popLast() else { return }
            // A suite that only wrapped other suites adds nothing but an empty entry.
            if !(last.hasChildren && last.suite.testCases.isEmpty) { slots[last.slot] = last.suite }
        case "testcase":
            finishCase()
        case "failure", "error", "skipped":
            guard case .problem(let kind, let message, let type) = capture, kind == elementName else { return }
            caseProblems.append((kind, JUnitProblem(message: message, type: type ?? kind, text: takeText())))
        case "system-out", "system-err":
            let body = takeText()
            guard !open.isEmpty, !body.isEmpty else { return }
            let isOut = elementName == "system-out"
            var part = body
            if let c = currentCase { part = "--- \(c.classname).\(c.name) ---\n" + body }
            if !part.hasSuffix("\n") { part += "\n" }
            if isOut { open[open.count - 1].suite.systemOut += part } else { open[open.count - 1].suite.systemErr += part }
        default:
            break
        }
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) {
        append(string)
    }

    func parser(_ parser: XMLParser, foundCDATA CDATABlock: Data) {
        append(String(decoding: CDATABlock, as: UTF8.self))
    }

    func parser(_ parser: XMLParser, parseErrorOccurred parseError: Error) {
        if errorLine == nil {
            error = parseError
            errorLine = parser.lineNumber
            errorColumn = parser.columnNumber
        }
    }

    private func startCapture(_ c: Capture) {
        capture = c
        text = ""
        textBytes = 0
        droppedBytes = 0
    }

    private func append(_ s: String) {
        if case .none = capture { return }
        let n = s.utf8.count
        if textBytes + n > Self.maxCaptureBytes {
            droppedBytes += n
        } else {
            text += s
            textBytes += n
        }
    }

    private func takeText() -> String {
        var result = text
        if droppedBytes > 0 { result += "\n[... \(droppedBytes) bytes cut ...]" }
        capture = .none
        text = ""
        return result
    }

    /// The schema allows one failure, error or skipped per case: an error wins over a
    /// failure, a failure over skipped; the other problems' texts are kept in its text.
    private func finishCase() {
        guard var testCase = currentCase, !open.isEmpty else { return }
        let primaryKind = ["error", "failure", "skipped"].first { k in caseProblems.contains { $0.kind == k } }
        if let primaryKind, let index = caseProblems.firstIndex(where: { $0.kind == primaryKind }) {
            var primary = caseProblems[index].problem
            for (i, other) in caseProblems.enumerated() where i != index {
                primary.text += "\n[also \(other.kind)\(other.problem.message.map { ": " + $0 } ?? "")]\n" + other.problem.text
            }
            switch primaryKind {
            case "error": testCase.result = .error(primary)
            case "failure": testCase.result = .failure(primary)
            default: testCase.result = .skipped(message: primary.message, text: primary.text)
            }
        }
        open[open.count - 1].suite.testCases.append(testCase)
        currentCase = nil
        caseProblems = []
    }
}
