import AgentSupport
import FoundationEssentials

/// The JUnit side of `JUnitParser`: what the report means, fed one node at a time by
/// `JUnitXMLReader` (which owns the libxml2 plumbing). Kept free of libxml2 types so the
/// JUnit rules (defaults, flattening, one result per case, capture limits) read on their own.
/// Used by one parse on one thread, then read.
struct JUnitReaderState {
    /// Text kept per element while parsing: the writer's largest limit (system-out, 1 MiB)
    /// plus a margin, so the writer still has more than it keeps and puts its own marker.
    static let maxCaptureBytes = JUnitWriter().maxSystemOutBytes + 64 * 1024
    /// Attribute values kept: twice the writer's limit (it clips to 4 KiB head and tail).
    static let maxAttributeBytes = 2 * JUnitWriter().maxAttributeBytes

    // Why redaction comes before clipping here: the parsed strings are redacted again by
    // `JUnitReport.redacted(by:)` and `JUnitWriter.redact`, but a clip that cuts a secret in
    // two leaves a piece the matcher cannot recognise (it matches whole values and their
    // encodings). A margin cannot fix that (a secret may be 500 KiB long). So each attribute
    // value is redacted whole, then clipped; each text node libxml2 hands over is redacted
    // whole, then appended and cut at the capture limit. What a cut can still split is a
    // secret spread over two text nodes (text, CDATA, text): the later passes see those
    // pieces joined as long as both were kept, and a cut drops everything after it.
    private let redact: (String) -> String

    private enum Capture {
        case none
        case problem(kind: String, message: String?, type: String?)
        case caseOut, caseErr, suiteOut, suiteErr
    }

    private let file: String
    private(set) var sawRoot = false
    /// Set when the document is XML but not JUnit (e.g. the wrong root element); the reader
    /// stops as soon as it is set.
    private(set) var problem: String?

    /// Suites in document (opening) order; nil while still open.
    private var slots: [JUnitSuite?] = []
    private var open: [(slot: Int, suite: JUnitSuite, hasChildren: Bool)] = []
    private var currentCase: JUnitTestCase?
    private var caseProblems: [(kind: String, problem: JUnitProblem)] = []
    /// Names of the elements open right now. libxml2 reports a truncated document itself;
    /// this is the backstop if a document ever ends cleanly with elements still open.
    private(set) var openElements: [String] = []
    private var capture = Capture.none
    private var text = ""
    private var textBytes = 0
    private var droppedBytes = 0

    /// Test cases this report may still keep; past it cases are only counted.
    private(set) var caseBudget: Int
    /// Cases counted but not kept.
    private(set) var omittedCases = 0

    /// `redact` is the job's matcher (identity when the job has no secrets); `caseBudget`
    /// is how many test cases may be kept (the rest are counted in `JUnitSuite.omitted`).
    init(file: String, redact: @escaping (String) -> String = { $0 }, caseBudget: Int = .max) {
        self.file = file
        self.redact = redact
        self.caseBudget = caseBudget
    }

    /// An attribute value as kept: redacted whole, then clipped to `maxAttributeBytes`.
    func attribute(_ value: String) -> String {
        XMLText.clip(redact(value), maxBytes: Self.maxAttributeBytes)
    }

    /// The parsed suites; containers that only held other suites are left out.
    var finishedSuites: [JUnitSuite] { slots.compactMap { $0 } }

    /// Whether text nodes matter right now: the reader skips copying text nobody keeps.
    var isCapturing: Bool {
        if case .none = capture { return false }
        return true
    }

    /// The file name without folders and `.xml`: the suite name when a report gives none.
    private var defaultSuiteName: String {
        let base = file.lastPathComponent
        return base.hasSuffix(".xml") ? String(base.dropLast(4)) : base
    }

    /// An element starts. `name` is the qualified name as written (`ns:testsuite` stays
    /// that, so a namespaced root is reported as such rather than silently accepted).
    mutating func startElement(_ name: String, attributes: [String: String]) {
        openElements.append(name)
        if !sawRoot {
            sawRoot = true
            guard name == "testsuites" || name == "testsuite" else {
                problem = Self.wrongRoot(name)
                return
            }
        }
        switch name {
        case "testsuite":
            if !open.isEmpty { open[open.count - 1].hasChildren = true }
            let suite = JUnitSuite(name: attributes["name"] ?? defaultSuiteName, package: attributes["package"],
                                   timestamp: JUnitParser.timestamp(attributes["timestamp"]),
                                   hostname: attributes["hostname"])
            slots.append(nil)
            open.append((slots.count - 1, suite, false))
        case "property" where currentCase == nil && !open.isEmpty:
            if let propertyName = attributes["name"] {
                open[open.count - 1].suite.properties.append(JUnitProperty(name: propertyName, value: attributes["value"] ?? ""))
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
            startCapture(.problem(kind: name, message: attributes["message"], type: attributes["type"]))
        case "system-out":
            startCapture(currentCase != nil ? .caseOut : .suiteOut)
        case "system-err":
            startCapture(currentCase != nil ? .caseErr : .suiteErr)
        default:
            break  // unknown elements (rerunFailure, properties in cases, ...) are ignored
        }
    }

    /// The message for a document whose root is not JUnit (also used when libxml2 stopped
    /// before the reader got to deliver the root).
    static func wrongRoot(_ name: String) -> String {
        "root element is <\(name)>, expected <testsuites> or <testsuite>"
    }

    /// An element ends (the reader calls this right after `startElement` for `<x/>`).
    mutating func endElement(_ name: String) {
        _ = openElements.popLast()
        switch name {
        case "testsuite":
            guard let last = open.popLast() else { return }
            // A suite that only wrapped other suites adds nothing but an empty entry.
            if !(last.hasChildren && last.suite.testCases.isEmpty) { slots[last.slot] = last.suite }
        case "testcase":
            finishCase()
        case "failure", "error", "skipped":
            guard case .problem(let kind, let message, let type) = capture, kind == name else { return }
            caseProblems.append((kind, JUnitProblem(message: message, type: type ?? kind, text: takeText())))
        case "system-out", "system-err":
            let body = takeText()
            guard !open.isEmpty, !body.isEmpty else { return }
            var part = body
            if let c = currentCase { part = "--- \(c.classname).\(c.name) ---\n" + body }
            if !part.hasSuffix("\n") { part += "\n" }
            if name == "system-out" { open[open.count - 1].suite.systemOut += part } else { open[open.count - 1].suite.systemErr += part }
        default:
            break
        }
    }

    /// Text, CDATA or whitespace inside the element being captured, as UTF-8 (libxml2 has
    /// already decoded the document's encoding). Past `maxCaptureBytes` only the count is
    /// kept. libxml2 hands over a whole text node at once (up to its 10 MB node limit), so
    /// a node that does not fit is cut at a character boundary rather than dropped whole,
    /// and nothing after a cut is kept (the marker then sits where the text stops).
    mutating func appendText(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard isCapturing, !bytes.isEmpty else { return }
        if droppedBytes > 0 {
            droppedBytes += bytes.count  // past the cut: only counted, not even redacted
            return
        }
        // Redacted whole before any cut (see above); the count of cut bytes is then of
        // redacted text, which is all anyone downstream sees.
        let redacted = Array(redact(String(decoding: bytes, as: UTF8.self)).utf8)
        redacted.withUnsafeBufferPointer { appendRedacted($0) }
    }

    private mutating func appendRedacted(_ bytes: UnsafeBufferPointer<UInt8>) {
        let room = Self.maxCaptureBytes - textBytes
        if bytes.count <= room {
            text += String(decoding: bytes, as: UTF8.self)
            textBytes += bytes.count
            return
        }
        var keep = max(room, 0)
        while keep > 0, bytes[keep] & 0xC0 == 0x80 { keep -= 1 }  // not inside a UTF-8 sequence
        if keep > 0 {
            text += String(decoding: UnsafeBufferPointer(rebasing: bytes[..<keep]), as: UTF8.self)
            textBytes += keep
        }
        droppedBytes += bytes.count - keep
    }

    private mutating func startCapture(_ c: Capture) {
        capture = c
        text = ""
        textBytes = 0
        droppedBytes = 0
    }

    private mutating func takeText() -> String {
        var result = text
        if droppedBytes > 0 { result += "\n[... \(droppedBytes) bytes cut ...]" }
        capture = .none
        text = ""
        textBytes = 0
        droppedBytes = 0
        return result
    }

    /// The schema allows one failure, error or skipped per case: an error wins over a
    /// failure, a failure over skipped; the other problems' texts are kept in its text.
    private mutating func finishCase() {
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
        if caseBudget > 0 {
            caseBudget -= 1
            open[open.count - 1].suite.testCases.append(testCase)
        } else {
            omittedCases += 1
            var counted = JUnitSummary(tests: 1)
            switch testCase.result {
            case .failure: counted.failures = 1
            case .error: counted.errors = 1
            case .skipped: counted.skipped = 1
            case .passed: break
            }
            open[open.count - 1].suite.omitted = open[open.count - 1].suite.omitted + counted
            open[open.count - 1].suite.omittedTime += max(testCase.time, 0)
        }
        currentCase = nil
        caseProblems = []
    }
}
