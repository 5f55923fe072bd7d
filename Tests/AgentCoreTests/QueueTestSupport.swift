import Foundation
import Logging
import Testing
@testable import AgentCore

/// Records which fake run saw which job, in order.
actor RunLog {
    private(set) var runs: [(id: String, agent: String)] = []
    func record(_ id: String, _ agent: String) { runs.append((id, agent)) }
    func count(of id: String) -> Int { runs.filter { $0.id == id }.count }
}

/// A stand-in for the job runner. The job file says what to do:
/// `{"sleepMs": 100, "exit": 1, "noResults": true}`. Writes status.json through a sibling
/// and a rename (as the real runner does), and answers cancellation with exit 130.
struct FakeExecutor: JobExecuting {
    let log: RunLog
    let agent: String

    func execute(jobFile: String, outputDirectory: String) async -> JobOutcome {
        let id = ((jobFile as NSString).lastPathComponent as NSString).deletingPathExtension
        await log.record(id, agent)
        let object = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: jobFile)))) as? [String: Any] ?? [:]
        var code = Int32(object["exit"] as? Int ?? 0)
        var state = code == 0 ? "succeeded" : "failed"
        if let ms = object["sleepMs"] as? Int {
            do { try await Task.sleep(for: .milliseconds(ms)) } catch { code = 130; state = "cancelled" }
        }
        if object["noResults"] as? Bool == true {
            return JobOutcome(exitCode: code, state: .error, resultsPath: nil, message: object["message"] as? String)
        }
        let tmp = outputDirectory + ".tmp"
        try? FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        let status = #"{"id":"\#(id)","state":"\#(state)","agent":"\#(agent)"}"#
        try? status.write(toFile: tmp + "/status.json", atomically: true, encoding: .utf8)
        rename(tmp, outputDirectory)
        return JobOutcome(exitCode: code, state: code == 0 ? .succeeded : .failed, resultsPath: outputDirectory, message: nil)
    }
}

enum QueueTest {
    static func makeDirectory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("queue-test-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try QueueLayout(root: dir).create()
        return dir
    }

    /// Writes a job the way producers must: a dotted name, then a rename.
    static func enqueue(_ root: String, _ id: String, _ json: String = "{}", age: TimeInterval? = nil, mtime: Date? = nil) throws {
        let layout = QueueLayout(root: root)
        let tmp = layout.incoming + "/." + id + ".json"
        try json.write(toFile: tmp, atomically: false, encoding: .utf8)
        if let date = mtime ?? age.map({ Date(timeIntervalSinceNow: -$0) }) {
            try FileManager.default.setAttributes([.modificationDate: date], ofItemAtPath: tmp)
        }
        #expect(rename(tmp, layout.incomingFile(id)) == 0)
    }

    static func options(agent: String, concurrency: Int = 1) -> WatchOptions {
        var o = WatchOptions(agentID: agent)
        o.concurrency = concurrency
        o.rescanInterval = .milliseconds(100)
        return o
    }

    static let logger = Logger(label: "queue-test", factory: { _ in SwiftLogNoOpLogHandler() })

    static func entries(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
    }

    /// Polls until `condition` holds; fails the test after `timeout` (generous: never a
    /// statement about speed, only a bound on a hang).
    static func waitUntil(_ what: String, timeout: Duration = .seconds(60),
                          _ condition: () async -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !(await condition()) {
            if ContinuousClock.now > deadline {
                Issue.record("timed out waiting until \(what)")
                throw CancellationError()
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    static func status(_ path: String) -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: path + "/status.json"),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [:] }
        return object
    }

    static func queueRecord(_ path: String) -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: path + "/queue.json"),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [:] }
        return object
    }

    /// Puts a job straight into running/ with a lease, as an agent that then died would
    /// have left it (nobody holds its flock). `hostID` is the lease's `HostIdentity`; its host
    /// name is always this machine's (cloned machines share one).
    static func strand(_ root: String, _ id: String, hostID: String, attempt: Int, heartbeatAge: TimeInterval = 0) throws {
        let layout = QueueLayout(root: root)
        try "{}".write(toFile: layout.runningFile(id), atomically: false, encoding: .utf8)
        let beat = Date(timeIntervalSinceNow: -heartbeatAge)
        let lease = Lease(id: id, agent: "dead-agent", host: WatchOptions().host, hostID: hostID, pid: 999_999,
                          token: "abc123", attempt: attempt, started: beat, heartbeat: beat)
        try QueueJSON.encoder.encode(lease).write(to: URL(fileURLWithPath: layout.leaseFile(id)))
    }
}
