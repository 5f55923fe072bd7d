import Foundation
import Testing
@testable import AgentCore

/// Entries of a queue directory that a hostile or careless producer can make: every one
/// must run or be filed to failed/ with a status.json saying why, and the queue must never
/// write outside its folders.
@Suite struct QueueHostileEntryTests {
    /// Creates `incoming/<bytes>` (any bytes: not necessarily UTF-8) as a regular file.
    static func createRaw(_ dir: String, _ name: [UInt8], _ content: String = "{}") throws {
        let fd = (Array(dir.utf8) + [0x2F] + name + [0]).withUnsafeBufferPointer { buf in
            buf.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buf.count) {
                open($0, O_WRONLY | O_CREAT | O_EXCL, 0o644)
            }
        }
        try #require(fd >= 0, "create \(name.count)-byte name: errno \(errno)")
        _ = content.withCString { write(fd, $0, strlen($0)) }
        close(fd)
    }

    /// Runs a watcher with the fake runner until `until` holds, then stops it.
    static func watch(_ root: String, log: RunLog = RunLog(), leaseTimeout: Duration = .seconds(60),
                      until what: String, _ condition: () async -> Bool) async throws {
        var options = QueueTest.options(agent: "a")
        options.leaseTimeout = leaseTimeout
        let w = QueueWatcher(jobsDirectory: root, options: options, executor: FakeExecutor(log: log, agent: "a"),
                             logger: QueueTest.logger)
        let t = Task { try await w.run() }
        do { try await QueueTest.waitUntil(what, condition) } catch {
            w.requestShutdown(); w.requestShutdown()
            _ = try? await t.value
            throw error
        }
        w.requestShutdown()
        _ = try await t.value
    }

    @Test func aNameTooLongForTheQueuesDerivedNamesIsFiledNotStuck() async throws {
        let root = try QueueTest.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let layout = QueueLayout(root: root)
        let long = String(repeating: "a", count: 245)   // 250 bytes with .json
        try QueueTest.enqueue(root, long)
        try QueueTest.enqueue(root, "fine")
        let log = RunLog()
        try await Self.watch(root, log: log, until: "the long name is filed and the other job done") {
            QueueTest.entries(layout.failed).count == 1 && QueueTest.entries(layout.done) == ["fine"]
        }
        let filed = try #require(QueueTest.entries(layout.failed).first)
        #expect(filed.hasPrefix("invalid-") && filed.count == "invalid-".count + 16)
        let status = QueueTest.status(layout.failed + "/" + filed)
        #expect(status["state"] as? String == "error")
        #expect(status["reason"] as? String == "invalid job")
        #expect((status["message"] as? String ?? "").contains("too long"))
        #expect(status["originalName"] as? String == long + ".json")
        #expect(FileManager.default.fileExists(atPath: layout.failed + "/" + filed + "/job.json"))
        #expect(await log.count(of: long) == 0, "never claimed")
        #expect(QueueTest.entries(layout.running).isEmpty && QueueTest.entries(layout.incoming).isEmpty)
        #expect(QueueTest.entries(layout.work).isEmpty)
    }

    @Test func aNameThatIsNotUTF8IsFiledWithTheNameEscaped() async throws {
        let root = try QueueTest.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let layout = QueueLayout(root: root)
        try Self.createRaw(layout.incoming, [0x6A, 0xFF, 0xFE] + Array(".json".utf8))
        try await Self.watch(root, until: "the name is filed") { QueueTest.entries(layout.failed).count == 1 }
        let filed = try #require(QueueTest.entries(layout.failed).first)
        #expect(filed.hasPrefix("invalid-"))
        let status = QueueTest.status(layout.failed + "/" + filed)
        #expect((status["message"] as? String ?? "").contains("not UTF-8"))
        #expect(status["originalName"] as? String == #"j\xff\xfe.json"#)
        #expect(QueueFS.listRaw(open(layout.incoming, O_RDONLY | O_DIRECTORY)).isEmpty, "nothing left in incoming/")
    }

    @Test func aFIFOADirectoryAndASymlinkNamedLikeJobsAreFiledNeverOpened() async throws {
        let root = try QueueTest.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let layout = QueueLayout(root: root)
        // Opening a FIFO for reading blocks until a writer comes: the agent would hang.
        #expect(mkfifo(layout.incoming + "/pipe.json", 0o644) == 0)
        try FileManager.default.createDirectory(atPath: layout.incoming + "/folder.json", withIntermediateDirectories: false)
        #expect(symlink("/etc/hostname", layout.incoming + "/link.json") == 0)
        try QueueTest.enqueue(root, "fine")
        try await Self.watch(root, until: "three entries filed and the job done") {
            QueueTest.entries(layout.failed) == ["folder", "link", "pipe"] && QueueTest.entries(layout.done) == ["fine"]
        }
        for (id, kind) in [("pipe", "a FIFO"), ("folder", "a directory"), ("link", "a symlink")] {
            let status = QueueTest.status(layout.failed + "/" + id)
            #expect(status["message"] as? String == "\(id).json: not a regular file (\(kind))")
            #expect(status["reason"] as? String == "invalid job")
        }
        // The symlink itself was moved, not what it points to.
        let moved = try FileManager.default.destinationOfSymbolicLink(atPath: layout.failed + "/link/job.json")
        #expect(moved == "/etc/hostname")
    }

    @Test func queueFoldersSwappedForSymlinksAreNeverWrittenThrough() async throws {
        let root = try QueueTest.makeDirectory()
        let outside = root + "-outside"
        defer { try? FileManager.default.removeItem(atPath: root); try? FileManager.default.removeItem(atPath: outside) }
        for dir in ["running", "work"] {
            try FileManager.default.createDirectory(atPath: outside + "/" + dir, withIntermediateDirectories: true)
        }
        let layout = QueueLayout(root: root)
        var options = QueueTest.options(agent: "a")
        options.leaseTimeout = .seconds(1)   // a heartbeat every 250 ms while running/ is swapped
        let log = RunLog()
        let w = QueueWatcher(jobsDirectory: root, options: options, executor: FakeExecutor(log: log, agent: "a"),
                             logger: QueueTest.logger)
        let t = Task { try await w.run() }
        defer { w.requestShutdown(); w.requestShutdown() }
        try QueueTest.enqueue(root, "probe")
        try await QueueTest.waitUntil("the watcher runs") { QueueTest.entries(layout.done) == ["probe"] }
        // .work is swapped before the job starts, running/ while it runs.
        #expect(rename(layout.work, root + "/work.real") == 0 && symlink(outside + "/work", layout.work) == 0)
        try QueueTest.enqueue(root, "swap", #"{"sleepMs": 1500}"#)
        // Swapped once the runner has read the job file: a path that no longer leads to the
        // claimed file is refused before the runner is called (the job is then not run).
        try await QueueTest.waitUntil("the job runs") { await log.count(of: "swap") == 1 }
        try await Task.sleep(for: .milliseconds(200))
        #expect(rename(layout.running, root + "/running.real") == 0 && symlink(outside + "/running", layout.running) == 0)
        try await QueueTest.waitUntil("the job is done") { QueueTest.entries(layout.done) == ["probe", "swap"] }
        w.requestShutdown()
        _ = try await t.value
        let written = ((try? FileManager.default.contentsOfDirectory(atPath: outside + "/running")) ?? [])
            + ((try? FileManager.default.contentsOfDirectory(atPath: outside + "/work")) ?? [])
        #expect(written.isEmpty, "nothing written through the symlinks: \(written)")
        #expect(QueueTest.status(layout.done + "/swap")["state"] as? String == "succeeded")
        #expect(FileManager.default.fileExists(atPath: layout.done + "/swap/job.json"))
        #expect(QueueTest.entries(root + "/running.real").isEmpty, "its lease removed from the real folder")
    }

    @Test func anExistingWorkFolderEntryIsRefusedNotReused() throws {
        let root = try QueueTest.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let layout = QueueLayout(root: root)
        #expect(symlink("/tmp", layout.work + "/x.t0k3n") == 0)
        let store = QueueStore(layout: layout, agentID: "a1", host: "h")
        #expect(throws: QueueError.self) { _ = try store.makeWorkDirectory(id: "x", token: "t0k3n") }
    }

    @Test func aFileLargerThanTheLimitIsRefusedNotCutShort() throws {
        let root = try QueueTest.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let layout = QueueLayout(root: root)
        try "0123456789A".write(toFile: layout.running + "/big.json", atomically: false, encoding: .utf8)
        let f = try QueueStore(layout: layout, agentID: "a1", host: "h").folders()
        #expect(throws: QueueError.tooLarge(path: "big.json", limit: 10)) {
            _ = try QueueFS.read(f.running, "big.json", limit: 10, shown: "big.json")
        }
        #expect(try QueueFS.read(f.running, "big.json", limit: 11, shown: "big.json").count == 11)
        // The job file limit, through the check the watcher makes before the runner.
        let big = Data(repeating: 0x20, count: QueueFS.maxJobFileBytes) + Data("{}".utf8)
        try big.write(to: URL(fileURLWithPath: layout.running + "/huge.json"))
        #expect(JobExecution.notAJobObject(f, id: "huge") == "huge.json: too large (more than \(QueueFS.maxJobFileBytes) bytes)")
    }
}
