import Foundation
import Testing

/// kill -9 of the agent at random moments while 200 queued jobs run with a locked cache,
/// and `agent cache import` and GC run beside them: no job is lost, none has two results,
/// no cache is lost, and every results folder is complete or absent.
@Suite(.serialized) struct CrashSafetyTests {
    static let jobs = 200

    /// `agent cache ...` as the test user on the queue's state folder.
    func cache(_ q: QueueIT.Queue, _ args: [String]) async throws -> Harness.Result {
        try await Harness.run(["cache"] + args + ["--state-dir", q.scratch + "/state"])
    }

    @Test func killNineAtRandomLosesNothingAndRunsNothingTwice() async throws {
        let q = try QueueIT.Queue(createLayout: true)
        // Each job appends its id to a shared log and to a locked cache (one holder at a time).
        for i in 0..<Self.jobs {
            let id = String(format: "crash-%03d", i)
            let json = #"{"version": 1, "steps": [{"name": "append", "run": "echo \#(id) >> /shared/log; echo \#(id) >> /c/log", "mounts": ["type=bind,source=\#(q.workspace),target=/shared,rw", "type=cache,id=locked,target=/c,sharing=locked"]}]}"#
            try q.enqueue(id, json)
        }
        // An archive to import again and again into another cache while jobs run.
        let archive = q.scratch + "/imported.tar"
        try Harness.write("imported-content", to: q.scratch + "/import-src/marker")
        let tar = Process()
        tar.executableURL = URL(fileURLWithPath: "/bin/tar")
        tar.arguments = ["-cf", archive, "-C", q.scratch + "/import-src", "."]
        try tar.run(); tar.waitUntilExit()
        chown(archive, Harness.user.uid, Harness.user.gid)

        // Side traffic: imports and GC, for as long as the kills go on.
        let stop = ManagedAtomicFlag()
        let side = Task {
            var imports = 0
            while !stop.isSet {
                let r = try await cache(q, ["import", "imported", archive])
                if r.status == 0 { imports += 1 }
                _ = try await cache(q, ["prune", "--older-than", "1h"])
                try await Task.sleep(for: .milliseconds(100))
            }
            return imports
        }

        var rng = SystemRandomNumberGenerator()
        // Eight kills may catch one job eight times: --max-attempts 10, so none is filed as
        // "agent lost" (which is what a job killed more often than that rightly becomes).
        for round in 0..<8 {
            let agent = try q.startAgent("k\(round)", ["--concurrency", "2", "--max-attempts", "10"])
            try await Task.sleep(for: .milliseconds(Int.random(in: 300...1200, using: &rng)))
            kill(agent.processIdentifier, SIGKILL)
            await Harness.waitForExit(agent)
        }
        stop.set()
        let imports = try await side.value
        // A last agent, left alone, finishes the queue (recovery requeues what the kills left).
        let last = try q.startAgent("final", ["--concurrency", "2", "--max-attempts", "10"])
        // Its signal handler is in place once it says it is watching (the kills may already
        // have finished every job, and a SIGTERM before that would just end the process).
        try await QueueIT.waitUntil("the last agent watches") {
            ((try? String(contentsOfFile: q.scratch + "/agent-final.log", encoding: .utf8)) ?? "").contains("watching")
        }
        try await QueueIT.waitUntil("the queue is empty", timeout: .seconds(300)) {
            q.entries("incoming").isEmpty && q.entries("running").isEmpty
                && q.entries("done").count + q.entries("failed").count >= Self.jobs
        }
        let code = try await q.stop(last)
        #expect(code == 0, "exit \(code): \(q.agentLogs().suffix(3000))")

        // Every job has exactly one result (no "ID.2": nothing ran to completion twice).
        let results = q.entries("done").map { ("done", $0) } + q.entries("failed").map { ("failed", $0) }
        let ids = results.map(\.1)
        #expect(Set(ids).count == ids.count)
        #expect(Set(ids) == Set((0..<Self.jobs).map { String(format: "crash-%03d", $0) }), "\(ids.filter { !$0.hasPrefix("crash-") || $0.contains(".") })")
        #expect(q.entries("done").count == Self.jobs, "failed: \(q.entries("failed")) \(q.agentLogs().suffix(2000))")
        // Every results folder is complete: its status parses, junit.xml and the log are there.
        for (folder, id) in results {
            let status = q.status("\(folder)/\(id)")
            #expect(status["state"] as? String == "succeeded", "\(folder)/\(id): \(status)")
            #expect(FileManager.default.fileExists(atPath: q.root + "/\(folder)/\(id)/junit.xml"), "\(folder)/\(id)")
            #expect(FileManager.default.fileExists(atPath: q.root + "/\(folder)/\(id)/logs/01-append.log"), "\(folder)/\(id)")
        }
        // At least once each: a job killed after its append and before its result runs again.
        #expect(Set(q.sharedLog()) == Set(ids))
        // No cache is lost: the locked cache holds only whole lines of job ids, and the
        // imported cache is complete.
        let ls = try await cache(q, ["ls", "--json"])
        #expect(ls.status == 0 && ls.stdout.contains("\"locked\"") && ls.stdout.contains("\"imported\""), "\(ls.stdout) \(ls.stderr)")
        let exported = q.scratch + "/out.tar"
        let export = try await cache(q, ["export", "imported", "-o", exported])
        #expect(export.status == 0, "\(export.stderr)")
        let list = Process()
        list.executableURL = URL(fileURLWithPath: "/bin/tar")
        list.arguments = ["-tf", exported]
        let pipe = Pipe()
        list.standardOutput = pipe
        try list.run(); list.waitUntilExit()
        let names = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(names.contains("marker"), "\(names)")
        #expect(imports > 0)
        let lockedTar = q.scratch + "/locked.tar"
        #expect(try await cache(q, ["export", "locked", "-o", lockedTar]).status == 0)
        let cat = Process()
        cat.executableURL = URL(fileURLWithPath: "/bin/tar")
        cat.arguments = ["-xOf", lockedTar, "log"]
        let out = Pipe()
        cat.standardOutput = out
        try cat.run(); cat.waitUntilExit()
        let lines = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n")
        #expect(!lines.isEmpty && lines.allSatisfy { Set(ids).contains(String($0)) }, "\(lines.prefix(20))")
        #expect(!q.agentLogs().contains("fatal"), "\(q.agentLogs().suffix(2000))")
    }
}

/// A flag set once, read from another task.
final class ManagedAtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func set() { lock.lock(); value = true; lock.unlock() }
}
