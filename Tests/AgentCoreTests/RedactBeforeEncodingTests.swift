import Foundation
import SandboxPolicy
import Testing
@testable import AgentCore

/// Hostile secrets against every format the agent writes: XML-special characters, a
/// control character and non-ASCII text must come out as `***` in junit.xml and
/// status.json, never raw, escaped for the format, or cut in half by clipping.
@Suite struct RedactBeforeEncodingTests {
    static let hostile: [String: String] = [
        "amp": "p&ss<w0rd-42\"'",
        "ctl": "tok\u{1b}en-12345",
        "utf8": "pässwörd-секрет",
    ]

    static func secrets() -> JobSecrets {
        JobSecrets(SecretStore(values: hostile.mapValues { Array($0.utf8) }))
    }

    /// Every form in which `secret` must not appear in a written file: raw, sanitized
    /// (control pictures), XML- and JSON-escaped, and each half of it in those forms.
    static func forbiddenForms(_ secret: String) -> [String] {
        let chars = Array(secret)
        let halves = [String(chars[..<(chars.count / 2)]), String(chars[(chars.count / 2)...])]
        var forms: [String] = []
        for text in [secret] + halves {
            forms += [text, XMLText.sanitize(text), XMLText.escapeText(text), XMLText.escapeAttribute(text)]
            let json = String(decoding: try! JSONEncoder().encode(text), as: UTF8.self)
            forms.append(String(json.dropFirst().dropLast()))
        }
        // Numeric character references of the non-ASCII or special characters.
        for scalar in secret.unicodeScalars where !scalar.isASCII || "&<>\"'\u{1b}".unicodeScalars.contains(scalar) {
            forms.append("&#\(scalar.value);")
            forms.append("&#x\(String(scalar.value, radix: 16));")
        }
        return Array(Set(forms.filter { !$0.isEmpty }))
    }

    static func expectNoLeak(_ document: String, sourceLocation: SourceLocation = #_sourceLocation) {
        for (id, secret) in hostile {
            for form in forbiddenForms(secret) {
                #expect(!document.contains(form), "secret \(id) leaks as \(form.debugDescription)", sourceLocation: sourceLocation)
            }
        }
    }

    /// A 100 KB text with `secret` straddling both ends of the part `XMLText.clip` cuts out
    /// at the writer's 64 KiB limit (the first quarter is kept, then the last three quarters).
    static func longText(with secret: String, total: Int = 100 * 1024, limit: Int = 64 * 1024) -> String {
        let headEnd = limit / 4
        let tailStart = total - (limit - headEnd)
        let half = secret.utf8.count / 2
        let first = String(repeating: "a", count: headEnd - half)
        let middle = String(repeating: "b", count: tailStart - headEnd - secret.utf8.count)
        let rest = total - first.utf8.count - middle.utf8.count - 2 * secret.utf8.count
        return first + secret + middle + secret + String(repeating: "c", count: max(rest, 0))
    }

    /// A report as a test would write it: the secrets XML-escaped in attributes and text.
    static func hostileReportXML() -> String {
        let amp = XMLText.escapeAttribute(hostile["amp"]!)
        let utf8 = XMLText.escapeAttribute(hostile["utf8"]!)
        return """
        <?xml version="1.0" encoding="UTF-8"?>
        <testsuite name="suite \(amp)">
          <properties><property name="pw" value="\(amp) \(utf8)"/></properties>
          <testcase name="login as \(amp)" classname="cls.\(utf8)">
            <failure message="login failed for \(amp)" type="\(utf8)">\(XMLText.escapeText(longText(with: hostile["amp"]!)))</failure>
          </testcase>
          <testcase name="utf8 \(utf8)" classname="c">
            <error message="\(utf8)">\(XMLText.escapeText(longText(with: hostile["utf8"]!)))</error>
            <system-out>\(XMLText.escapeText(longText(with: hostile["utf8"]!, total: 1536 * 1024, limit: 1024 * 1024)))</system-out>
          </testcase>
        </testsuite>
        """
    }

    @Test func parsedReportHoldsTheRawSecretAndTheModelPassRemovesIt() throws {
        let parsed = JUnitParser.parse(data: Data(Self.hostileReportXML().utf8), file: "TEST-hostile.xml")
        #expect(parsed.problem == nil)
        let suite = try #require(parsed.suites.first)
        #expect(suite.testCases[0].name == "login as " + Self.hostile["amp"]!)
        let secrets = Self.secrets()
        let redacted = JUnitReport(suites: parsed.suites).redacted(by: secrets.redact)
        #expect(redacted.suites[0].testCases[0].name == "login as ***")
        #expect(redacted.suites[0].name == "suite ***")
        #expect(redacted.summary == JUnitReport(suites: parsed.suites).summary)
    }

    @Test func junitOfHostileReportAndStepsHasOnlyMasks() throws {
        let secrets = Self.secrets()
        let parsed = JUnitParser.parse(data: Data(Self.hostileReportXML().utf8), file: "TEST-hostile.xml")
        // Step results carry the control-character secret (XML cannot), in every field.
        let ctl = Self.hostile["ctl"]!
        let lines = (0..<150).map { "line \($0) \(ctl)" } + [Self.longText(with: ctl)]
        let steps = [
            JUnitStepResult(name: "deploy \(ctl)", state: .failed, exitCode: 2, outputLines: lines, message: "bad token \(ctl)"),
            JUnitStepResult(name: "skip", state: .skipped, message: "because \(Self.hostile["amp"]!)"),
            JUnitStepResult(name: "err", state: .error, message: Self.longText(with: Self.hostile["utf8"]!)),
        ]
        let report = JUnitReport.forJob(id: "job", steps: steps, reports: [parsed])
        var writer = JUnitWriter(timestamp: Date(timeIntervalSince1970: 0), hostname: "h")
        writer.redact = { secrets.redact($0) }
        let xml = writer.render(report)
        Self.expectNoLeak(xml)
        #expect(xml.contains("login failed for ***"))
        #expect(xml.contains("name=\"login as ***\""))
        #expect(xml.contains("name=\"deploy ***\""))
        #expect(xml.contains("bytes cut ..."))  // the long texts really were clipped
        // Without redaction the same render leaks, so the checks above can fail.
        let unredacted = JUnitWriter(timestamp: Date(timeIntervalSince1970: 0), hostname: "h").render(report)
        #expect(unredacted.contains("p&amp;ss&lt;w0rd-42"))
        #expect(unredacted.contains("tok␛en-12345"))
    }

    @Test func runnerWritesRedactedJUnitFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("redact-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let runner = JobRunner(options: RunnerOptions(stateDirectory: dir + "/state", policy: AgentPolicy(),
                                                      environment: [:], workingDirectory: dir))
        let results = try ResultsFolder.create(at: dir + "/out", force: false)
        let parsed = JUnitParser.parse(data: Data(Self.hostileReportXML().utf8), file: "TEST-hostile.xml")
        let job = JobSpec(id: "j", steps: [StepSpec(name: "t", run: .shell("true"))], baseDirectory: dir)
        try runner.writeJUnit(job: job, startedAt: Date(), steps: [JUnitStepResult(name: "t", state: .succeeded)],
                              reports: [parsed], secrets: Self.secrets(), results: results)
        try results.commit()
        let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/out/junit.xml"))
        Self.expectNoLeak(String(decoding: data, as: UTF8.self))
    }

    @Test func statusJSONRedactsFieldsBeforeEncoding() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("redact-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let runner = JobRunner(options: RunnerOptions(stateDirectory: dir, policy: AgentPolicy(),
                                                      environment: [:], workingDirectory: dir))
        var status = JobStatus(jobID: "j", state: .error, exitCode: 3, startedAt: "t")
        let all = Self.hostile.values.sorted().joined(separator: " / ")
        status.error = "agent error: \(all)"
        status.warnings = ["warning \(all)"]
        var step = StepStatus(index: 1, name: "s \(all)", type: "build", state: .error, allowFailure: false)
        step.reason = "reason \(all)"
        step.log = "logs/01-\(Self.hostile["amp"]!).log"
        status.steps = [step]
        status.artifacts = ArtifactSummary(files: 0, bytes: 0, errors: ["artifact \(all)"])
        let json = String(decoding: try runner.encode(status, secrets: Self.secrets()), as: UTF8.self)
        Self.expectNoLeak(json)
        let decoded = try JSONDecoder().decode(JobStatus.self, from: Data(json.utf8))
        #expect(decoded.error == "agent error: *** / *** / ***")
        #expect(decoded.steps[0].reason == "reason *** / *** / ***")
        #expect(decoded.steps[0].name == "s *** / *** / ***")
        #expect(decoded.warnings == ["warning *** / *** / ***"])
        #expect(decoded.artifacts?.errors == ["artifact *** / *** / ***"])
    }

    /// Values over 4 KB get no JSON-escaped pattern, so redacting the encoded text (what
    /// status.json used to do) let every 64-byte piece holding a `"` through.
    @Test func largeSecretWithQuotesIsRedactedBeforeJSONEscaping() throws {
        let big = (0..<120).map { "k\($0)-\"q\"-abcdefghijklmnopqrstuvwxyz0123456789" }.joined()
        #expect(big.utf8.count > SecretPatterns.allEncodingsLimit)
        let secrets = JobSecrets(SecretStore(values: ["big": Array(big.utf8)]))
        let runner = JobRunner(options: RunnerOptions(stateDirectory: "/nonexistent", policy: AgentPolicy(),
                                                      environment: [:], workingDirectory: "/"))
        var status = JobStatus(jobID: "j", state: .failed, exitCode: 1, startedAt: "t")
        var step = StepStatus(index: 1, name: "s", type: "build", state: .failed, allowFailure: false)
        step.reason = "reason " + big + " end"
        status.steps = [step]
        let json = String(decoding: try runner.encode(status, secrets: secrets), as: UTF8.self)
        #expect(!json.contains("abcdefghijklmnop"))
        #expect(json.contains("\"reason\" : \"reason *** end\""))
    }

    /// Progress renderers get events whose names, commands, reasons and warnings are
    /// redacted before they format or JSON-encode them.
    @Test func progressEventsAreRedactedBeforeRendering() throws {
        let secrets = Self.secrets()
        let out = BufferOutput()
        let sink = ProgressSink(renderer: JSONProgress(output: out), redact: { secrets.redact($0) })
        let all = Self.hostile.values.sorted().joined(separator: " ")
        sink.send(.jobStarted(jobID: "job", stepCount: 1, time: Date()))
        sink.send(.stepStarted(index: 0, total: 1, name: "n \(all)", command: "echo \(all)", time: Date()))
        sink.send(.stepWaiting(index: 0, reason: "waiting for \(all)"))
        sink.send(.stepFinished(index: 0, name: "n \(all)", state: .failed, exitCode: 1, signal: nil, duration: .zero, lastLines: []))
        sink.send(.stepSkipped(index: 0, total: 1, name: "n \(all)", reason: "r \(all)"))
        sink.warning("w \(all)")
        sink.send(.jobFinished(jobID: "job", state: .failed, exitCode: 1, duration: .zero))
        Self.expectNoLeak(out.text)
        #expect(out.text.contains("\"command\":\"echo *** *** ***\""))
        #expect(sink.warnings == ["w *** *** ***"])
    }
}
