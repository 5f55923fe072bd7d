import Foundation
import Testing
@testable import AgentCore

/// The watcher end to end, with a fake runner and the real kernel (inotify, flock, rename).
@Suite struct QueueWatcherTests {
    @Test func twoWatchersRacingRunEachOf200JobsExactlyOnce() async throws {
        let root = try QueueTest.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let log = RunLog()
        let a = QueueWatcher(jobsDirectory: root, options: QueueTest.options(agent: "a", concurrency: 4),
                             executor: FakeExecutor(log: log, agent: "a"), logger: QueueTest.logger)
        let b = QueueWatcher(jobsDirectory: root, options: QueueTest.options(agent: "b", concurrency: 4),
                             executor: FakeExecutor(log: log, agent: "b"), logger: QueueTest.logger)
        let ta = Task { try await a.run() }
        let tb = Task { try await b.run() }
        let ids = (0..<200).map { String(format: "job-%03d", $0) }
        for id in ids { try QueueTest.enqueue(root, id) }
        let done = QueueLayout(root: root).done
        try await QueueTest.waitUntil("200 results") { QueueTest.entries(done).count >= 200 }
        a.requestShutdown()
        b.requestShutdown()
        let sa = try await ta.value, sb = try await tb.value
        #expect(sa.finished + sb.finished == 200)
        #expect(QueueTest.entries(done) == ids, "each job once, under its own id")
        for id in ids { #expect(await log.count(of: id) == 1, "\(id) ran more than once") }
        #expect(QueueTest.entries(QueueLayout(root: root).running).isEmpty)
        #expect(QueueTest.entries(QueueLayout(root: root).incoming).isEmpty)
        let record = QueueTest.queueRecord(done + "/job-000")
        #expect(record["attempt"] as? Int == 1)
        #expect(["a", "b"].contains(record["agent"] as? String ?? ""))
        #expect(FileManager.default.fileExists(atPath: done + "/job-000/job.json"))
    }

    @Test func invalidFilesGoToFailedWithAReasonAndTheAgentKeepsGoing() async throws {
        let root = try QueueTest.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let log = RunLog()
        let w = QueueWatcher(jobsDirectory: root, options: QueueTest.options(agent: "a"),
                             executor: FakeExecutor(log: log, agent: "a"), logger: QueueTest.logger)
        let t = Task { try await w.run() }
        try QueueTest.enqueue(root, "broken", "{ this is not json", age: 30)
        try QueueTest.enqueue(root, "array", "[1, 2]", age: 20)
        try QueueTest.enqueue(root, "rejected", #"{"exit": 2, "noResults": true}"#, age: 10)
        try QueueTest.enqueue(root, "broke", #"{"exit": 3, "noResults": true, "message": "workspace layer lock: EAGAIN"}"#, age: 5)
        try QueueTest.enqueue(root, "fine", "{}")
        let layout = QueueLayout(root: root)
        try await QueueTest.waitUntil("all five handled") {
            QueueTest.entries(layout.failed).count == 4 && QueueTest.entries(layout.done) == ["fine"]
        }
        w.requestShutdown()
        _ = try await t.value
        let broken = QueueTest.status(layout.failed + "/broken")
        #expect(broken["state"] as? String == "error")
        #expect(broken["reason"] as? String == "invalid job")
        #expect((broken["message"] as? String ?? "").hasPrefix("broken.json: not valid JSON"))
        #expect((QueueTest.status(layout.failed + "/array")["message"] as? String ?? "").contains("must be a JSON object"))
        let rejected = QueueTest.status(layout.failed + "/rejected")
        #expect(rejected["state"] as? String == "error")
        #expect(rejected["exitCode"] as? Int == 2)
        // An agent error without results keeps the runner's message, which names the stage.
        let broke = QueueTest.status(layout.failed + "/broke")
        #expect(broke["reason"] as? String == "agent error")
        #expect(broke["message"] as? String == "workspace layer lock: EAGAIN")
        #expect(await log.count(of: "broken") == 0, "a file that is not JSON never reaches the runner")
        #expect(FileManager.default.fileExists(atPath: layout.failed + "/broken/job.json"))
    }

    @Test func aDottedFileIsNotReadBeforeItsRename() async throws {
        let root = try QueueTest.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let layout = QueueLayout(root: root)
        let log = RunLog()
        let w = QueueWatcher(jobsDirectory: root, options: QueueTest.options(agent: "a"),
                             executor: FakeExecutor(log: log, agent: "a"), logger: QueueTest.logger)
        let t = Task { try await w.run() }
        // Half written, and left so across several rescans.
        let partial = layout.incoming + "/.slow.json"
        try #"{"sleepMs": "#.write(toFile: partial, atomically: false, encoding: .utf8)
        try "{not a job}".write(toFile: layout.incoming + "/notes.txt", atomically: false, encoding: .utf8)
        try QueueTest.enqueue(root, "marker-1")
        try await QueueTest.waitUntil("marker 1 done") { QueueTest.entries(layout.done) == ["marker-1"] }
        try await Task.sleep(for: .milliseconds(300))
        try QueueTest.enqueue(root, "marker-2")
        try await QueueTest.waitUntil("marker 2 done") { QueueTest.entries(layout.done).count == 2 }
        #expect(FileManager.default.fileExists(atPath: partial))
        #expect(FileManager.default.fileExists(atPath: layout.incoming + "/notes.txt"))
        #expect(await log.count(of: "slow") == 0)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: partial))
        handle.seekToEndOfFile()
        handle.write(Data("1}".utf8))
        try handle.close()
        #expect(rename(partial, layout.incomingFile("slow")) == 0)
        try await QueueTest.waitUntil("slow done") { QueueTest.entries(layout.done).contains("slow") }
        w.requestShutdown()
        _ = try await t.value
        #expect(QueueTest.status(layout.done + "/slow")["state"] as? String == "succeeded")
    }

    @Test func anExistingResultIsNeverOverwritten() async throws {
        let root = try QueueTest.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let layout = QueueLayout(root: root)
        try FileManager.default.createDirectory(atPath: layout.done + "/same", withIntermediateDirectories: true)
        try "earlier".write(toFile: layout.done + "/same/marker", atomically: false, encoding: .utf8)
        let w = QueueWatcher(jobsDirectory: root, options: QueueTest.options(agent: "a"),
                             executor: FakeExecutor(log: RunLog(), agent: "a"), logger: QueueTest.logger)
        let t = Task { try await w.run() }
        try QueueTest.enqueue(root, "same")
        try await QueueTest.waitUntil("second result") { QueueTest.entries(layout.done) == ["same", "same.2"] }
        try QueueTest.enqueue(root, "same")
        try await QueueTest.waitUntil("third result") { QueueTest.entries(layout.done).count == 3 }
        w.requestShutdown()
        _ = try await t.value
        #expect(QueueTest.entries(layout.done) == ["same", "same.2", "same.3"])
        #expect((try? String(contentsOfFile: layout.done + "/same/marker", encoding: .utf8)) == "earlier")
        #expect(FileManager.default.fileExists(atPath: layout.done + "/same.2/status.json"))
    }

    @Test func cancellingARunningJobCancelsItsTaskAndKeepsItsResults() async throws {
        let root = try QueueTest.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let layout = QueueLayout(root: root)
        let w = QueueWatcher(jobsDirectory: root, options: QueueTest.options(agent: "a"),
                             executor: FakeExecutor(log: RunLog(), agent: "a"), logger: QueueTest.logger)
        let t = Task { try await w.run() }
        try QueueTest.enqueue(root, "long", #"{"sleepMs": 600000}"#)
        try await QueueTest.waitUntil("running") { QueueTest.entries(layout.running).contains("long.lease") }
        let store = QueueStore(layout: layout, agentID: "cli", host: "h")
        let outcome = try store.cancel(id: "long")
        #expect(outcome == .requested(agent: "a", host: WatchOptions().host))
        try await QueueTest.waitUntil("cancelled result") { QueueTest.entries(layout.failed) == ["long"] }
        w.requestShutdown()
        let summary = try await t.value
        #expect(summary.finished == 1)
        #expect(QueueTest.status(layout.failed + "/long")["state"] as? String == "cancelled")
        #expect(QueueTest.queueRecord(layout.failed + "/long")["exitCode"] as? Int == 130)
        #expect(QueueTest.entries(layout.cancel).isEmpty, "the request is removed with the job")
        #expect(QueueTest.entries(layout.running).isEmpty)
    }

    @Test func shutdownLetsARunningJobFinish() async throws {
        let root = try QueueTest.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let layout = QueueLayout(root: root)
        let w = QueueWatcher(jobsDirectory: root, options: QueueTest.options(agent: "a"),
                             executor: FakeExecutor(log: RunLog(), agent: "a"), logger: QueueTest.logger)
        let t = Task { try await w.run() }
        try QueueTest.enqueue(root, "short", #"{"sleepMs": 500}"#, age: 10)
        try QueueTest.enqueue(root, "next")
        try await QueueTest.waitUntil("running") { QueueTest.entries(layout.running).contains("short.json") }
        w.requestShutdown()
        let summary = try await t.value
        #expect(summary.finished == 1)
        #expect(QueueTest.entries(layout.done) == ["short"])
        #expect(QueueTest.entries(layout.incoming) == ["next.json"], "no new claims after the signal")
    }

    @Test func aSecondShutdownRequestCancelsAndRequeuesAtOnce() async throws {
        let root = try QueueTest.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let layout = QueueLayout(root: root)
        let w = QueueWatcher(jobsDirectory: root, options: QueueTest.options(agent: "a"),
                             executor: FakeExecutor(log: RunLog(), agent: "a"), logger: QueueTest.logger)
        let t = Task { try await w.run() }
        try QueueTest.enqueue(root, "long", #"{"sleepMs": 600000}"#)
        try await QueueTest.waitUntil("running") { QueueTest.entries(layout.running).contains("long.json") }
        w.requestShutdown()
        w.requestShutdown()
        let summary = try await t.value
        #expect(summary.requeuedOnShutdown == 1)
        #expect(QueueTest.entries(layout.incoming) == ["long.json"])
        #expect(QueueTest.entries(layout.done).isEmpty && QueueTest.entries(layout.failed).isEmpty)
        #expect(QueueStore(layout: layout, agentID: "x", host: "h").previousAttempts("long") == 0,
                "a shutdown is not the job's fault: the same attempt runs again")
    }

    @Test func graceRunningOutCancelsAndRequeues() async throws {
        let root = try QueueTest.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let layout = QueueLayout(root: root)
        var options = QueueTest.options(agent: "a")
        options.grace = .milliseconds(200)
        let w = QueueWatcher(jobsDirectory: root, options: options,
                             executor: FakeExecutor(log: RunLog(), agent: "a"), logger: QueueTest.logger)
        let t = Task { try await w.run() }
        try QueueTest.enqueue(root, "long", #"{"sleepMs": 600000}"#)
        try await QueueTest.waitUntil("running") { QueueTest.entries(layout.running).contains("long.json") }
        w.requestShutdown()
        let summary = try await t.value
        #expect(summary.requeuedOnShutdown == 1)
        #expect(QueueTest.entries(layout.incoming) == ["long.json"])
    }
}
