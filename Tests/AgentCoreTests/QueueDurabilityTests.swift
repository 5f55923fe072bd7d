import Foundation
import Logging
import Testing
@testable import AgentCore

/// What keeps a claim alive and its state intact: locks that work on NFS, a heartbeat the
/// task pool cannot starve, host identity beyond the host name, crash-safe state files.
@Suite struct QueueDurabilityTests {
    @Test func theJobLockIsTakenOnADescriptorOpenForWriting() throws {
        let root = try QueueTest.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try QueueTest.enqueue(root, "j")
        let store = QueueStore(layout: QueueLayout(root: root), agentID: "a1", host: "h")
        let claimed = try #require(store.claim("j"))
        // NFS refuses an exclusive lock on a read-only descriptor (EBADF).
        #expect(claimed.lock.accessMode == O_RDWR)
        #expect(fcntl(claimed.lock.fd, F_GETFD) & FD_CLOEXEC != 0, "never inherited by a container")
    }

    @Test func theHeartbeatKeepsBeatingWhileEveryPoolThreadIsBlocked() async throws {
        let root = try QueueTest.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try QueueTest.enqueue(root, "j")
        let store = QueueStore(layout: QueueLayout(root: root), agentID: "a1", host: "h")
        let claimed = try #require(store.claim("j"))
        let before = try #require(store.readLease("j")).heartbeat
        let beat = try LeaseHeartbeat(store: store, job: claimed, interval: .milliseconds(100), logger: QueueTest.logger)
        defer { beat.stop() }
        // Synchronous sleeps on as many tasks as the pool has threads (one per core): no other
        // task can run for 0.6 s. Kept short: the other tests of this process share the pool.
        let width = ProcessInfo.processInfo.activeProcessorCount
        let started = Date()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<width { group.addTask { usleep(600_000) } }
        }
        let after = try #require(store.readLease("j")).heartbeat
        #expect(Date().timeIntervalSince(started) >= 0.55, "the pool really was blocked")
        #expect(after.timeIntervalSince(before) >= 0.3, "beat while the pool was blocked: \(before) → \(after)")
        beat.stop()
        let stopped = try #require(store.readLease("j")).heartbeat
        usleep(300_000)
        #expect(try #require(store.readLease("j")).heartbeat == stopped, "no beat after stop()")
    }

    @Test func hostIdentityIsTheMachineIDAndTheBootID() throws {
        let bootID = try String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let machineID = try String(contentsOfFile: "/etc/machine-id", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(HostIdentity.current == machineID + ":" + bootID)
        #expect(WatchOptions().hostID == HostIdentity.current)
        // A part that cannot be read never matches another agent's.
        #expect(HostIdentity.make(machineID: nil, bootID: "b") != HostIdentity.make(machineID: nil, bootID: "b"))
    }

    @Test func aCloneWithTheSameHostNameIsJudgedByItsHeartbeatNotItsLock() throws {
        let root = try QueueTest.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        // Same host name (strand uses this machine's), another machine id: its flock is
        // invisible here, so only a stale heartbeat makes it lost.
        try QueueTest.strand(root, "clone", hostID: "cloned-machine:other-boot", attempt: 1, heartbeatAge: 5)
        try QueueTest.strand(root, "mine", hostID: HostIdentity.current, attempt: 1, heartbeatAge: 5)
        let store = QueueStore(layout: QueueLayout(root: root), agentID: "a1", host: WatchOptions().host)
        #expect(store.recover(leaseTimeout: .seconds(60), maxAttempts: 3) == [.requeued(id: "mine", attempt: 1)])
        #expect(store.runningJobs() == ["clone"])
        let claimed = try #require(store.claim("mine"))
        #expect(store.readLease("mine")?.hostID == HostIdentity.current)
        _ = claimed
    }

    @Test func leaseAndAttemptsFilesAreReplacedWholeNeverRewrittenInPlace() throws {
        let root = try QueueTest.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let layout = QueueLayout(root: root)
        // The longest id: every temporary and derived name still fits NAME_MAX.
        let id = String(repeating: "i", count: QueueLayout.maxIDBytes)
        try QueueTest.enqueue(root, id)
        let store = QueueStore(layout: layout, agentID: "a1", host: "h")
        let claimed = try #require(store.claim(id))
        let old = try FileHandle(forReadingFrom: URL(fileURLWithPath: layout.leaseFile(id)))
        let oldContent = try #require(try old.readToEnd())
        try store.heartbeat(claimed)
        // A rename put a new inode in place: the open descriptor still reads the old lease
        // whole (an in-place rewrite would show it truncated or mixed).
        try old.seek(toOffset: 0)
        #expect(try old.readToEnd() == oldContent)
        // A new file is in place (the heartbeat may write the same bytes within one second).
        var oldStat = stat(), newStat = stat()
        #expect(fstat(old.fileDescriptor, &oldStat) == 0 && stat(layout.leaseFile(id), &newStat) == 0)
        #expect(oldStat.st_ino != newStat.st_ino)
        try store.requeue(id: id, lock: claimed.lock, attemptsUsed: 1, lostLease: nil)
        claimed.lock.release()
        #expect(try String(contentsOfFile: layout.attemptsFile(id), encoding: .utf8) == "1\n")
        let stray = (try FileManager.default.contentsOfDirectory(atPath: layout.running)
                     + FileManager.default.contentsOfDirectory(atPath: layout.attempts)).filter { $0.hasPrefix(".") }
        #expect(stray.isEmpty, "no temporary file left: \(stray)")
        #expect(store.claim(id)?.attempt == 2)
    }

    @Test func staleTemporaryFilesAndDeadClaimsResultsFoldersAreSwept() throws {
        let root = try QueueTest.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let layout = QueueLayout(root: root)
        let fm = FileManager.default
        let old = Date(timeIntervalSinceNow: -3600)
        // A writer killed between create and rename, in each folder the queue writes.
        for dir in [layout.running, layout.attempts, layout.cancel] {
            fm.createFile(atPath: dir + "/.tmp-deadbeef00112233", contents: Data("x".utf8), attributes: [.modificationDate: old])
            fm.createFile(atPath: dir + "/.tmp-fresh", contents: Data("x".utf8))
        }
        // A killed runner's temporary results folder, in the work folder of a claim whose
        // agent died (its lease names token abc123).
        try QueueTest.strand(root, "lost", hostID: HostIdentity.current, attempt: 1)
        let dead = layout.workDirectory("lost", token: "abc123")
        try fm.createDirectory(atPath: dead + "/.result.tmp-zz9/logs", withIntermediateDirectories: true)
        // A stray dotted entry of .work.
        try fm.createDirectory(atPath: layout.work + "/.result.tmp-q1", withIntermediateDirectories: true)
        try fm.setAttributes([.modificationDate: old], ofItemAtPath: layout.work + "/.result.tmp-q1")
        let store = QueueStore(layout: layout, agentID: "a1", host: "h")
        #expect(store.recover(leaseTimeout: .seconds(60), maxAttempts: 3) == [.requeued(id: "lost", attempt: 1)])
        for dir in [layout.running, layout.attempts, layout.cancel] {
            let dotted = try fm.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix(".") }
            #expect(dotted == [".tmp-fresh"], "\(dir): only the fresh temporary file is left")
        }
        #expect(!fm.fileExists(atPath: dead), "the dead claim's work folder and the runner's temporary folder in it")
        #expect(!fm.fileExists(atPath: layout.work + "/.result.tmp-q1"))
    }
}
