import Foundation
import Testing

enum QueueIT {
    /// Polls; the timeout bounds a hang, it is not a statement about speed.
    static func waitUntil(_ what: String, timeout: Duration = .seconds(120), _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !condition() {
            if ContinuousClock.now > deadline {
                Issue.record("timed out waiting until \(what)")
                throw CancellationError()
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// A queue directory owned by the test user, a shared workspace jobs append to, and
    /// the agents started on it.
    final class Queue: @unchecked Sendable {
        let root: String
        let workspace: String
        let scratch: String
        private var logs: [String] = []

        init(createLayout: Bool = false) throws {
            scratch = try Harness.scratch("queue")
            root = scratch + "/jobs"
            workspace = scratch + "/workspace"
            for dir in [root, workspace] + (createLayout ? ["incoming", "running", "done", "failed", "cancel"].map { root + "/" + $0 } : []) {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                chmod(dir, 0o755)
                chown(dir, Harness.user.uid, Harness.user.gid)
            }
            try Harness.write("", to: workspace + "/log", mode: 0o666)
            // Job workspaces are copy-on-write, so the shared log is a read-write bind that
            // the agents' policy allows.
            try Harness.write(#"{"allowedBindSources": ["\#(workspace)"]}"#, to: scratch + "/policy.json")
        }

        deinit { try? FileManager.default.removeItem(atPath: scratch) }

        /// A job with one step that appends its id to the shared log (after `sleep` s).
        func appendingJob(_ id: String, sleep: Int = 0) -> String {
            let cmd = (sleep > 0 ? "sleep \(sleep); " : "") + "echo \(id) >> /shared/log"
            return #"{"version": 1, "steps": [{"name": "append", "run": "\#(cmd)", "mounts": ["type=bind,source=\#(workspace),target=/shared,rw"]}]}"#
        }

        /// Writes `incoming/.id.json`, then renames it in (as producers must).
        func enqueue(_ id: String, _ json: String) throws {
            let tmp = root + "/incoming/.\(id).json"
            try Harness.write(json, to: tmp)
            #expect(rename(tmp, root + "/incoming/\(id).json") == 0)
        }

        func startAgent(_ name: String, _ extra: [String]) throws -> Process {
            let log = scratch + "/agent-\(name).log"
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            logs.append(log)
            let p = Harness.process(["watch", root, "--agent-id", name, "--rescan-interval", "200ms",
                                     "--policy", scratch + "/policy.json", "--state-dir", scratch + "/state"] + extra)
            p.standardInput = FileHandle.nullDevice
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle(forWritingAtPath: log)
            try p.run()
            return p
        }

        /// SIGTERM, then the exit status.
        func stop(_ p: Process) async throws -> Int32 {
            kill(p.processIdentifier, SIGTERM)
            try await QueueIT.waitUntil("agent exits", timeout: .seconds(300)) { !p.isRunning }
            return p.terminationStatus
        }

        func entries(_ folder: String) -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: root + "/" + folder)) ?? [])
                .filter { !$0.hasPrefix(".") }.sorted()
        }

        func json(_ path: String) -> [String: Any]? {
            guard let data = FileManager.default.contents(atPath: root + "/" + path) else { return nil }
            return try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        }

        func lease(_ id: String) -> [String: Any]? { json("running/\(id).lease") }
        func status(_ result: String) -> [String: Any] { json(result + "/status.json") ?? [:] }
        func record(_ result: String) -> [String: Any] { json(result + "/queue.json") ?? [:] }

        func sharedLog() -> [String] {
            ((try? String(contentsOfFile: workspace + "/log", encoding: .utf8)) ?? "")
                .split(separator: "\n").map(String.init)
        }

        func agentLogs() -> String {
            logs.map { (try? String(contentsOfFile: $0, encoding: .utf8)) ?? "" }.joined(separator: "\n")
        }
    }
}
