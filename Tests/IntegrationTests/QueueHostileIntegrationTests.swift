import Foundation
import Testing

/// Hostile queue entries against the real `agent watch`, run as the unprivileged test user:
/// every name runs or is filed, and a folder swapped for a symlink is never written through.
@Suite(.serialized) struct QueueHostileIntegrationTests {
    @Test func badNamesAndNonRegularEntriesAreFiledAndTheAgentKeepsGoing() async throws {
        let q = try QueueIT.Queue(createLayout: true)
        let incoming = q.root + "/incoming"
        let long = String(repeating: "l", count: 245)   // 250 bytes with .json
        try q.enqueue(long, q.appendingJob("long"))
        #expect(mkfifo(incoming + "/pipe.json", 0o644) == 0)
        try FileManager.default.createDirectory(atPath: incoming + "/folder.json", withIntermediateDirectories: false)
        let raw = Array(incoming.utf8) + Array("/bad-".utf8) + [0xFF] + Array(".json".utf8) + [0]
        let fd = raw.withUnsafeBufferPointer {
            $0.baseAddress!.withMemoryRebound(to: CChar.self, capacity: $0.count) { open($0, O_WRONLY | O_CREAT, 0o644) }
        }
        #expect(fd >= 0)
        close(fd)
        try q.enqueue("good", q.appendingJob("good"))
        let a = try q.startAgent("A", [])
        do {
            try await QueueIT.waitUntil("all handled", timeout: .seconds(120)) {
                // running/ empty too: the lease goes just after the result is published.
                q.entries("failed").count == 4 && q.entries("done") == ["good"] && q.entries("running").isEmpty
            }
        } catch {
            let state = "failed: \(q.entries("failed")) done: \(q.entries("done")) incoming: \(q.entries("incoming")) "
                + "running: \(q.entries("running"))\n\(q.agentLogs())"
            Issue.record(Comment(rawValue: state))
            throw error
        }
        let messages = q.entries("failed").map { q.status("failed/\($0)")["message"] as? String ?? "" }
        #expect(messages.contains { $0.contains("too long") }, "\(messages)")
        #expect(messages.contains { $0.contains("not UTF-8") }, "\(messages)")
        #expect(messages.contains("pipe.json: not a regular file (a FIFO)"), "\(messages)")
        // Created by root: the agent may not move another user's folder (its ".." cannot be
        // rewritten), so it is renamed aside in incoming/ and the result says so.
        #expect(messages.contains { $0.hasPrefix("folder.json: not a regular file (a directory); it could not be moved") },
                "\(messages)")
        #expect(q.sharedLog() == ["good"], "the long-named job never ran")
        #expect(q.entries("running").isEmpty && q.entries("incoming").isEmpty)
        #expect(try await q.stop(a) == 0)
    }

    @Test func aRunningFolderSwappedForASymlinkIsNeverWrittenThrough() async throws {
        let q = try QueueIT.Queue(createLayout: true)
        let outside = q.scratch + "/outside"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        chown(outside, Harness.user.uid, Harness.user.gid)
        let a = try q.startAgent("A", ["--lease-timeout", "2s"])
        // Swapped while the step runs: a path that no longer leads to the claimed file is
        // refused before the runner is called, so the swap waits for the step's first line.
        try q.enqueue("swap", q.appendingJob("swap", sleep: 3).replacingOccurrences(of: "sleep 3", with: "echo started >> /shared/log; sleep 3"))
        try await QueueIT.waitUntil("running") { q.sharedLog().contains("started") }
        #expect(rename(q.root + "/running", q.root + "/running.real") == 0)
        #expect(symlink(outside, q.root + "/running") == 0)
        do {
            try await QueueIT.waitUntil("done", timeout: .seconds(120)) { q.entries("done") == ["swap"] }
        } catch {
            let state = "failed: \(q.entries("failed")) running.real: \(q.entries("running.real")) \(q.agentLogs())"
            Issue.record(Comment(rawValue: state))
            throw error
        }
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: outside)) ?? []).isEmpty,
                "nothing written through the symlink \(q.agentLogs())")
        #expect(q.status("done/swap")["state"] as? String == "succeeded")
        #expect(try await q.stop(a) == 0)
    }
}
