import Foundation
import Testing

/// What an ordinary job can cost the agent: output floods, hostile or numerous reports, and
/// fork bombs. The agent's peak RSS is read from /proc/PID/status (VmHWM) while it runs:
/// setpriv execs the agent, so the process we start is the agent.
@Suite(.serialized) struct ResourceBoundsTests {
    /// Runs `run-job` on `fixture` and polls the agent's VmHWM until it exits.
    static func runMeasured(_ f: JobFixture, _ extra: [String] = []) async throws -> (status: Int32, peakKiB: Int, stderr: String) {
        let p = Harness.process(["run-job", f.job, "--output", f.results, "--state-dir", f.state, "--progress", "plain"] + extra)
        let errPath = f.dir + "/stderr.txt"
        FileManager.default.createFile(atPath: errPath, contents: nil)
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle(forWritingAtPath: errPath)
        try p.run()
        var peak = 0
        while p.isRunning {
            if let kib = vmHWM(p.processIdentifier) { peak = max(peak, kib) }
            try await Task.sleep(for: .milliseconds(20))
        }
        p.waitUntilExit()
        let stderr = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        return (p.terminationStatus, peak, String(stderr.suffix(4000)))
    }

    static func vmHWM(_ pid: Int32) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }) else { return nil }
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    }

    /// The agent's peak for a job that prints nothing: the baseline the bounds are above.
    static func idlePeakKiB() async throws -> Int {
        let f = try JobFixture(#"{"version": 1, "id": "idle", "steps": [{"name": "idle", "run": "sleep 0.3"}]}"#)
        let r = try await runMeasured(f)
        #expect(r.status == 0, "\(r.stderr)")
        return r.peakKiB
    }

    /// 64 MiB above idle is the documented bound (README "Resource bounds").
    static let boundKiB = 64 * 1024

    @Test func aGigabyteOfYesKeepsTheAgentsMemoryBounded() async throws {
        let idle = try await Self.idlePeakKiB()
        let f = try JobFixture(#"{"version": 1, "id": "flood", "steps": [{"name": "flood", "run": "yes | head -c 1000000000; echo done"}]}"#)
        let r = try await Self.runMeasured(f, ["--log-limit", "1048576"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.peakKiB > 0)
        #expect(r.peakKiB - idle < Self.boundKiB, "peak \(r.peakKiB) KiB, idle \(idle) KiB")
        let log = try f.read("logs/01-flood.log")
        #expect(log.contains("[log truncated: "))
        let step = try f.steps()[0]
        #expect(step["state"] as? String == "succeeded")
    }

    @Test func entityAmplificationIsAMalformedReportNamingTheEntity() async throws {
        // The review's shape: one 3 KB entity, referenced 3000 times per name attribute.
        let script = #"""
        mkdir -p /tmp/r
        e=$(head -c 3000 /dev/zero | tr '\0' A)
        refs=$(yes '&e;' | head -n 3000 | tr -d '\n')
        { printf '<!DOCTYPE t [<!ENTITY e "%s">]><testsuite>' "$e"
          for i in 1 2 3 4 5 6 7 8 9 10; do printf '<testcase name="%s%s"/>' "$i" "$refs"; done
          printf '</testsuite>'; } > /tmp/r/amp.xml
        """#
        let f = try JobFixture(#"{"version": 1, "id": "amp", "workspace": "src", "steps": [{"name": "unit", "type": "test", "run": ["/bin/sh", "amp.sh"], "reports": ["/tmp/r/*.xml"]}]}"#,
                               files: ["src/amp.sh": script])
        let r = try await Self.runMeasured(f)
        #expect(r.status == 1, "\(r.stderr)")
        let junit = try f.read("junit.xml")
        #expect(junit.contains("MalformedReport"))
        #expect(junit.contains("declares the entity &quot;e&quot;") || junit.contains("declares the entity \"e\""), "\(junit.prefix(2000))")
    }

    @Test func hardLinksAndThousandsOfReportsAreCappedWithAWarning() async throws {
        let idle = try await Self.idlePeakKiB()
        // 20 names for one sparse 60 MB report (read once), and 10,000 small reports (1000 read).
        let script = #"""
        mkdir -p /tmp/r/many
        truncate -s 60000000 /tmp/r/big.xml
        for i in $(seq 1 19); do ln /tmp/r/big.xml /tmp/r/link$i.xml; done
        i=0
        while [ $i -lt 10000 ]; do
          echo "<testsuite name=\"s$i\"><testcase name=\"t\"/></testsuite>" > /tmp/r/many/r$i.xml
          i=$((i+1))
        done
        """#
        let f = try JobFixture(#"{"version": 1, "id": "many", "workspace": "src", "steps": [{"name": "unit", "type": "test", "run": ["/bin/sh", "many.sh"], "reports": ["/tmp/r/*.xml", "/tmp/r/many/*.xml"]}]}"#,
                               files: ["src/many.sh": script])
        let r = try await Self.runMeasured(f)
        let status = try f.status()
        let warnings = (status["warnings"] as? [String]) ?? []
        #expect(warnings.contains { $0.contains("hard links") }, "\(warnings)")
        #expect(warnings.contains { $0.contains("reports.maxFiles") }, "\(warnings)")
        // The sparse file is NUL bytes: one malformed report (the step fails), read once.
        #expect(r.status == 1, "\(r.stderr)")
        let tests = try f.steps()[0]["tests"] as? [String: Any]
        #expect((tests?["tests"] as? Int ?? 0) <= 1000)
        #expect(r.peakKiB - idle < Self.boundKiB, "peak \(r.peakKiB) KiB, idle \(idle) KiB")
    }

    @Test func aForkBombNeitherStopsTheAgentNorTheOtherJob() async throws {
        let q = try QueueIT.Queue()
        let agent = try q.startAgent("A", ["--concurrency", "2"])
        // 6000 background sleeps against the default limit of 4096: fork fails (the shell
        // says so on stderr), then exit 1; the container's end takes the sleeps with it.
        let bomb = #"{"version": 1, "steps": [{"name": "bomb", "timeout": "60s", "run": "i=0; while [ $i -lt 6000 ]; do sleep 60 & i=$((i+1)); done; exit 1"}]}"#
        try q.enqueue("bomb", bomb)
        try await QueueIT.waitUntil("the bomb runs") { q.lease("bomb") != nil }
        try await Task.sleep(for: .seconds(1))
        try q.enqueue("after", q.appendingJob("after"))
        try await QueueIT.waitUntil("both finish", timeout: .seconds(180)) {
            (q.entries("done") + q.entries("failed")).filter { ["bomb", "after"].contains($0) }.count == 2
        }
        #expect(q.entries("done").contains("after"), "\(q.agentLogs())")
        #expect(q.sharedLog().contains("after"))
        #expect(q.entries("failed").contains("bomb"))
        let steps = q.status("failed/bomb")["steps"] as? [[String: Any]] ?? []
        let limit = steps.first?["process_limit"] as? [String: Any]
        #expect(limit?["kind"] as? String == "rlimit")
        #expect(limit?["value"] as? Int == 4096)
        #expect((steps.first?["reason"] as? String ?? "").contains("RLIMIT_NPROC 4096"), "\(steps)")
        #expect(try await q.stop(agent) == 0)
    }
}
