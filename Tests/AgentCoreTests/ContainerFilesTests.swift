import Foundation
import Testing
@testable import AgentCore
@testable import SandboxPolicy

/// The per-step report caps, on a plain folder standing in for a container's root.
@Suite struct ContainerFilesTests {
    func root() throws -> String {
        let dir = NSTemporaryDirectory() + "reports-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/r", withIntermediateDirectories: true)
        return dir
    }

    func read(_ dir: String, _ limits: AgentPolicy.ReportLimits, redact: @escaping (String) -> String = { $0 }) throws -> ContainerFiles.Reports {
        let fd = open(dir, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        return try ContainerFiles.readReports(rootFD: fd, rootPath: dir, patterns: ["/r/*.xml"], base: "/workspace",
                                              limits: limits, redact: redact)
    }

    @Test func hardLinksAreReadOnceAndCapsSkipWithANote() throws {
        let dir = try root()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for i in 0..<5 {
            try "<testsuite name=\"s\(i)\"><testcase name=\"t\"/></testsuite>".write(toFile: dir + "/r/a\(i).xml", atomically: false, encoding: .utf8)
        }
        for i in 0..<3 { #expect(link(dir + "/r/a0.xml", dir + "/r/b\(i).xml") == 0) }
        let all = try read(dir, .init())
        #expect(all.matched == 8)
        #expect(all.parsed.count == 5)
        #expect(all.skipped == ["3 reports not read again: hard links to a report already read"])
        let few = try read(dir, .init(maxFiles: 2))
        #expect(few.parsed.count == 2)
        #expect(few.skipped.contains { $0.contains("(reports.maxFiles)") })
        let small = try read(dir, .init(maxTotalBytes: 120))
        #expect(small.parsed.count == 2)
        #expect(small.skipped.contains { $0.contains("(reports.maxTotalBytes)") })
    }

    @Test func casesPastMaxCasesAreCountedNotKept() throws {
        let dir = try root()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "<testsuite name=\"s\"><testcase name=\"a\"/><testcase name=\"b\"><failure/></testcase><testcase name=\"c\"/></testsuite>"
            .write(toFile: dir + "/r/one.xml", atomically: false, encoding: .utf8)
        try "<testsuite name=\"t\"><testcase name=\"d\"><skipped/></testcase><testcase name=\"e\" time=\"2\"/></testsuite>"
            .write(toFile: dir + "/r/two.xml", atomically: false, encoding: .utf8)
        let r = try read(dir, .init(maxCases: 2))
        #expect(r.parsed.flatMap(\.suites).reduce(0) { $0 + $1.testCases.count } == 2)
        let total = r.parsed.reduce(JUnitSummary()) { $0 + $1.summary }
        #expect(total == JUnitSummary(tests: 5, failures: 1, errors: 0, skipped: 1))
        #expect(r.parsed[1].suites[0].time == 2)
        #expect(r.skipped.contains("3 test cases counted but not kept: more than 2 in all (reports.maxCases)"))
    }

    @Test func anOversizedReportIsMalformedWithoutBeingRead() throws {
        let dir = try root()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fd = open(dir + "/r/big.xml", O_WRONLY | O_CREAT, 0o644)
        #expect(ftruncate(fd, 65 << 20) == 0)  // sparse: costs nothing to make
        close(fd)
        let r = try read(dir, .init())
        #expect(r.parsed.count == 1)
        #expect(r.parsed[0].problem?.contains("reports.maxFileBytes") == true)
    }

    @Test func textsAreRedactedBeforeTheyAreKept() throws {
        let dir = try root()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let secret = "hunter2-" + String(repeating: "z", count: 40)
        try "<testsuite><testcase name=\"\(secret)\"><failure message=\"m \(secret)\">at \(secret) end</failure></testcase></testsuite>"
            .write(toFile: dir + "/r/s.xml", atomically: false, encoding: .utf8)
        let r = try read(dir, .init(), redact: { $0.replacingOccurrences(of: secret, with: "***") })
        let c = r.parsed.first?.suites.first?.testCases.first
        #expect(c?.name == "***")
        guard case .failure(let f) = c?.result else { Issue.record("expected a failure"); return }
        #expect(f.message == "m ***")
        #expect(f.text == "at *** end")
    }
}
