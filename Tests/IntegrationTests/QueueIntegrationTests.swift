import Foundation
import Testing

/// `agent watch`, `agent cancel` and `agent queue status` as real processes run by the
/// unprivileged test user. None is gated: an agent that cannot start fails these tests.
@Suite(.serialized) struct QueueIntegrationTests {
    @Test func twoAgentsRun200JobsEachExactlyOnce() async throws {
        let q = try QueueIT.Queue()
        let a = try q.startAgent("A", ["--concurrency", "2"])
        let b = try q.startAgent("B", ["--concurrency", "2"])
        let ids = (0..<200).map { String(format: "j%03d", $0) }
        for id in ids { try q.enqueue(id, q.appendingJob(id)) }
        try await QueueIT.waitUntil("200 results", timeout: .seconds(900)) { q.entries("done").count + q.entries("failed").count >= 200 }
        #expect(q.entries("failed").isEmpty, "failed: \(q.entries("failed").map { ($0, q.status("failed/\($0)")) }) \(q.agentLogs())")
        #expect(q.entries("done") == ids)
        let lines = q.sharedLog()
        for id in ids { #expect(lines.filter { $0 == id }.count == 1, "\(id) ran \(lines.filter { $0 == id }.count) times") }
        for id in ids { #expect(["A", "B"].contains(q.record("done/\(id)")["agent"] as? String ?? "")) }
        #expect(try await q.stop(a) == 0)
        #expect(try await q.stop(b) == 0)
    }

    @Test func aKilledAgentsJobIsRequeuedAndFinishedByTheOther() async throws {
        let q = try QueueIT.Queue()
        let a = try q.startAgent("A", [])
        try q.enqueue("slow", q.appendingJob("slow", sleep: 3))
        try await QueueIT.waitUntil("A runs the job") { q.lease("slow")?["agent"] as? String == "A" }
        // Killed agents are not waited for: their flock is gone with the process, and
        // the next agent's periodic recovery notices.
        kill(a.processIdentifier, SIGKILL)
        let b = try q.startAgent("B", [])
        try await QueueIT.waitUntil("the job is done", timeout: .seconds(300)) { q.entries("done").contains("slow") }
        let record = q.record("done/slow")
        #expect(record["agent"] as? String == "B")
        #expect(record["attempt"] as? Int == 2)
        #expect(try await q.stop(b) == 0)
    }

    @Test func aJobWhoseAgentDiesEveryTimeFailsAfterMaxAttempts() async throws {
        let q = try QueueIT.Queue()
        try q.enqueue("cursed", q.appendingJob("cursed", sleep: 60))
        for attempt in 1...2 {
            let agent = try q.startAgent("A\(attempt)", ["--max-attempts", "2"])
            try await QueueIT.waitUntil("attempt \(attempt) runs") { q.lease("cursed")?["attempt"] as? Int == attempt }
            kill(agent.processIdentifier, SIGKILL)
        }
        let last = try q.startAgent("A3", ["--max-attempts", "2"])
        try await QueueIT.waitUntil("failed as agent lost") { q.entries("failed").contains("cursed") }
        #expect(q.status("failed/cursed")["reason"] as? String == "agent lost")
        #expect(try await q.stop(last) == 0)
    }

    @Test func anInvalidFileFailsWithAReasonAndTheAgentKeepsGoing() async throws {
        let q = try QueueIT.Queue()
        let a = try q.startAgent("A", [])
        try q.enqueue("garbage", "{ not json")
        try q.enqueue("unknown-key", #"{"version": 1, "stepz": []}"#)
        try q.enqueue("good", q.appendingJob("good"))
        try await QueueIT.waitUntil("all handled", timeout: .seconds(300)) {
            q.entries("failed").count == 2 && q.entries("done") == ["good"]
        }
        #expect(q.status("failed/garbage")["state"] as? String == "error")
        #expect((q.status("failed/garbage")["message"] as? String ?? "").contains("not valid JSON"))
        #expect(q.status("failed/unknown-key")["state"] as? String == "error")
        #expect(try await q.stop(a) == 0)
    }

    @Test func sigtermDuringARunningJobLetsItFinishAndExitsZero() async throws {
        let q = try QueueIT.Queue()
        let a = try q.startAgent("A", [])
        try q.enqueue("finishing", q.appendingJob("finishing", sleep: 2))
        try await QueueIT.waitUntil("running") { q.lease("finishing") != nil }
        #expect(try await q.stop(a) == 0)
        #expect(q.entries("done") == ["finishing"])
        #expect(q.status("done/finishing")["state"] as? String == "succeeded")
        #expect(q.sharedLog() == ["finishing"])
    }

    @Test func cancellingARunningJobStopsItAndWritesItsResults() async throws {
        let q = try QueueIT.Queue()
        let a = try q.startAgent("A", [])
        try q.enqueue("endless", q.appendingJob("endless", sleep: 600))
        try await QueueIT.waitUntil("running") { q.lease("endless") != nil }
        let r = try await Harness.run(["cancel", q.root, "endless"])
        #expect(r.status == 0, "\(r.stderr)")
        try await QueueIT.waitUntil("cancelled", timeout: .seconds(120)) { q.entries("failed").contains("endless") }
        #expect(q.status("failed/endless")["state"] as? String == "cancelled")
        #expect(try await q.stop(a) == 0)
    }

    /// Needs no runner: cancel and status work on the folders alone.
    @Test func cancelAQueuedJobAndStatusCountsMatchTheFolders() async throws {
        let q = try QueueIT.Queue(createLayout: true)
        try q.enqueue("one", "{}")
        try q.enqueue("two", "{}")
        try q.enqueue("three", "{}")
        let cancelled = try await Harness.run(["cancel", q.root, "two"])
        #expect(cancelled.status == 0, "\(cancelled.stderr)")
        #expect(q.entries("failed") == ["two"])
        #expect(q.status("failed/two")["state"] as? String == "cancelled")
        let missing = try await Harness.run(["cancel", q.root, "nope"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("nope"))
        let status = try await Harness.run(["queue", "status", q.root, "--json"])
        #expect(status.status == 0, "\(status.stderr)")
        let object = try JSONSerialization.jsonObject(with: status.stdoutBytes) as? [String: Any]
        let counts = object?["counts"] as? [String: Int] ?? [:]
        #expect(counts["incoming"] == 2 && counts["running"] == 0 && counts["done"] == 0 && counts["failed"] == 1)
        let text = try await Harness.run(["queue", "status", q.root])
        #expect(text.stdout.hasPrefix("incoming 2  running 0  done 0  failed 1"))
    }

    /// Needs no runner: options are checked before anything else.
    @Test func badOptionsAreNamedWithExitCode2() async throws {
        let q = try QueueIT.Queue()
        let r = try await Harness.run(["watch", q.root, "--concurrency", "0"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("--concurrency"))
        let g = try await Harness.run(["watch", q.root, "--grace", "later"])
        #expect(g.status == 2)
        #expect(g.stderr.contains("--grace"))
    }
}
