import Foundation
import Logging
import Testing
@testable import AgentCore

/// Claims, crash recovery, cancel and status on a real directory, without a watcher.
@Suite struct QueueStoreTests {
    let host = WatchOptions().host

    @Test func claimIsOldestFirstAndExclusive() throws {
        let root = try QueueTest.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let sameTime = Date(timeIntervalSinceNow: -10)
        try QueueTest.enqueue(root, "b", mtime: sameTime)
        try QueueTest.enqueue(root, "a", mtime: sameTime)
        try QueueTest.enqueue(root, "old", age: 100)
        let store = QueueStore(layout: QueueLayout(root: root), agentID: "a1", host: host)
        #expect(store.queuedJobs() == ["old", "a", "b"])
        let claimed = try #require(store.claim("old"))
        #expect(claimed.attempt == 1)
        #expect(store.claim("old") == nil, "a claimed job cannot be claimed again")
        let lease = try #require(store.readLease("old"))
        #expect(lease.agent == "a1" && lease.token == claimed.token && lease.pid == getpid())
        // While the claim lives, recovery leaves it alone.
        #expect(store.recover(leaseTimeout: .seconds(60), maxAttempts: 3).isEmpty)
        #expect(store.runningJobs() == ["old"])
    }

    @Test func aJobWhoseLockIsFreeIsRequeuedWithItsAttemptRaised() throws {
        let root = try QueueTest.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try QueueTest.strand(root, "lost", hostID: HostIdentity.current, attempt: 1)
        let store = QueueStore(layout: QueueLayout(root: root), agentID: "a1", host: host)
        #expect(store.recover(leaseTimeout: .seconds(60), maxAttempts: 3) == [.requeued(id: "lost", attempt: 1)])
        #expect(store.queuedJobs() == ["lost"])
        #expect(store.runningJobs().isEmpty)
        #expect(store.readLease("lost") == nil)
        let again = try #require(store.claim("lost"))
        #expect(again.attempt == 2)
    }

    @Test func aJobLostMaxAttemptsTimesFailsAsAgentLost() throws {
        let root = try QueueTest.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let layout = QueueLayout(root: root)
        try QueueTest.strand(root, "doomed", hostID: HostIdentity.current, attempt: 3)
        let store = QueueStore(layout: layout, agentID: "a1", host: host)
        let actions = store.recover(leaseTimeout: .seconds(60), maxAttempts: 3)
        #expect(actions == [.failedAgentLost(id: "doomed", attempts: 3, path: layout.failed + "/doomed")])
        let status = QueueTest.status(layout.failed + "/doomed")
        #expect(status["state"] as? String == "error")
        #expect(status["reason"] as? String == "agent lost")
        #expect(FileManager.default.fileExists(atPath: layout.failed + "/doomed/job.json"))
        #expect(QueueTest.queueRecord(layout.failed + "/doomed")["attempt"] as? Int == 3)
        #expect(QueueTest.entries(layout.running).isEmpty, "lease removed too")
        #expect(QueueTest.entries(layout.work).isEmpty)
    }

    @Test func otherHostsAreJudgedByTheirHeartbeat() throws {
        let root = try QueueTest.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try QueueTest.strand(root, "fresh", hostID: "elsewhere", attempt: 1, heartbeatAge: 5)
        try QueueTest.strand(root, "stale", hostID: "elsewhere", attempt: 1, heartbeatAge: 120)
        let store = QueueStore(layout: QueueLayout(root: root), agentID: "a1", host: host)
        #expect(store.recover(leaseTimeout: .seconds(60), maxAttempts: 3) == [.requeued(id: "stale", attempt: 1)])
        #expect(store.runningJobs() == ["fresh"])
    }

    @Test func anUnpublishedResultOfADeadAgentIsPublished() throws {
        let root = try QueueTest.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let layout = QueueLayout(root: root)
        let result = layout.workDirectory("half", token: "t0k3n") + "/result"
        try FileManager.default.createDirectory(atPath: result, withIntermediateDirectories: true)
        try #"{"state":"succeeded"}"#.write(toFile: result + "/status.json", atomically: false, encoding: .utf8)
        try "{}".write(toFile: result + "/job.json", atomically: false, encoding: .utf8)
        let store = QueueStore(layout: layout, agentID: "a1", host: host)
        #expect(store.recover(leaseTimeout: .seconds(60), maxAttempts: 3)
                == [.publishedOrphan(id: "half", path: layout.done + "/half")])
        #expect(QueueTest.entries(layout.work).isEmpty)
    }

    @Test func cancellingAQueuedJobMovesItToFailed() throws {
        let root = try QueueTest.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let layout = QueueLayout(root: root)
        try QueueTest.enqueue(root, "waiting", #"{"steps": []}"#)
        let store = QueueStore(layout: layout, agentID: "cli", host: host)
        #expect(try store.cancel(id: "waiting") == .cancelledQueued(path: layout.failed + "/waiting"))
        #expect(QueueTest.status(layout.failed + "/waiting")["state"] as? String == "cancelled")
        #expect((try? String(contentsOfFile: layout.failed + "/waiting/job.json", encoding: .utf8)) == #"{"steps": []}"#)
        #expect(QueueTest.entries(layout.incoming).isEmpty)
        #expect(throws: QueueError.noSuchJob(id: "waiting", jobsDirectory: root)) { try store.cancel(id: "waiting") }
        #expect(throws: QueueError.invalidJobID("../x")) { try store.cancel(id: "../x") }
    }

    @Test func statusCountsMatchTheFolders() throws {
        let root = try QueueTest.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let layout = QueueLayout(root: root)
        for id in ["q1", "q2", "q3"] { try QueueTest.enqueue(root, id) }
        try ".half".write(toFile: layout.incoming + "/.q4.json", atomically: false, encoding: .utf8)
        try QueueTest.strand(root, "r1", hostID: HostIdentity.current, attempt: 2, heartbeatAge: 90)
        for d in ["d1", "d2"] { try FileManager.default.createDirectory(atPath: layout.done + "/" + d, withIntermediateDirectories: true) }
        try FileManager.default.createDirectory(atPath: layout.failed + "/f1", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: layout.done + "/.tmp-x", withIntermediateDirectories: true)
        let report = QueueStatusReport(layout: layout)
        #expect(report.counts == .init(incoming: 3, running: 1, done: 2, failed: 1, cancelRequests: 0))
        let running = try #require(report.running.first)
        #expect(running.id == "r1" && running.agent == "dead-agent" && running.attempt == 2)
        #expect((running.ageSeconds ?? 0) >= 89)
        let decoded = try QueueJSON.decoder.decode(QueueStatusReport.self, from: Data(report.json().utf8))
        #expect(decoded.counts == report.counts)
        #expect(report.text().hasPrefix("incoming 3  running 1  done 2  failed 1"))
    }

    @Test func durationsParseAndBadOptionsAreNamed() throws {
        #expect(try WatchOptions.parseDuration("500ms", option: "--x") == .milliseconds(500))
        #expect(try WatchOptions.parseDuration("2s", option: "--x") == .seconds(2))
        #expect(try WatchOptions.parseDuration("10m", option: "--x") == .seconds(600))
        #expect(try WatchOptions.parseDuration("1.5", option: "--x") == .milliseconds(1500))
        #expect(throws: QueueError.self) { try WatchOptions.parseDuration("soon", option: "--grace") }
        var o = WatchOptions(agentID: "a")
        o.concurrency = 0
        #expect(throws: QueueError.invalidOption(name: "--concurrency", value: "0", reason: "must be at least 1")) {
            try o.validate()
        }
        #expect(QueueLayout.jobID(fileName: ".x.json") == nil)
        #expect(QueueLayout.jobID(fileName: "x.txt") == nil)
        #expect(QueueLayout.jobID(fileName: "a.b.json") == "a.b")
    }

    @Test func logLinesAreStructured() throws {
        let time = Date(timeIntervalSince1970: 0)
        let text = StructuredLogHandler.render(format: .text, time: time, level: .info, message: "claimed",
                                               metadata: ["job": "a b", "attempt": "1"])
        #expect(text == "1970-01-01T00:00:00.000Z info claimed attempt=1 job=\"a b\"\n")
        let json = StructuredLogHandler.render(format: .json, time: time, level: .warning, message: "lost",
                                               metadata: ["job": "x"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: String])
        #expect(object == ["time": "1970-01-01T00:00:00.000Z", "level": "warning", "message": "lost", "job": "x"])
    }

    @Test func aLayoutPathThatIsNotADirectoryIsNamed() throws {
        let root = try QueueTest.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let layout = QueueLayout(root: root)
        try FileManager.default.removeItem(atPath: layout.done)
        try "x".write(toFile: layout.done, atomically: false, encoding: .utf8)
        #expect(throws: QueueError.layout(path: layout.done, reason: "exists but is not a directory")) { try layout.create() }
    }
}

extension QueueStoreTests {
    @Test func aJobsDirectoryThatCannotBeCreatedIsNamed() throws {
        let layout = QueueLayout(root: "/nonexistent-parent-\(UUID().uuidString)/jobs")
        #expect(throws: QueueError.self) { try layout.create() }
        do { try layout.create() } catch {
            #expect("\(error)".hasPrefix(layout.root + ": cannot create"))
        }
    }
}
