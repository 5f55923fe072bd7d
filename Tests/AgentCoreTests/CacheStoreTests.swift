import Foundation
import Testing
@testable import AgentCore

/// A fresh state folder per test, removed afterwards.
final class TempState {
    let state: StateDirectory
    init() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("agent-cache-test-\(UUID().uuidString.prefix(8))").path
        state = StateDirectory(root: dir)
        try state.create()
    }
    deinit { try? FileManager.default.removeItem(atPath: state.root) }

    func write(_ text: String, _ path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: false, encoding: .utf8)
    }
}

func cache(_ id: String, _ sharing: MountSpec.Sharing = .shared) -> MountSpec.Cache {
    var c = MountSpec.Cache(target: "/cache", id: id)
    c.sharing = sharing
    return c
}

/// Collects strings from concurrent tasks in the order they arrive.
actor Recorder {
    var items: [String] = []
    func add(_ s: String) { items.append(s) }
}

@Suite struct CacheStoreTests {
    @Test func stateDirectoryIsPrivate() throws {
        let t = try TempState()
        var st = stat()
        #expect(stat(t.state.root, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o700)
        for sub in ["caches", "volumes", "jobs", "locks", "seccomp"] {
            #expect(FileManager.default.fileExists(atPath: t.state.root + "/" + sub))
        }
        let s = try StateDirectory.resolve(explicit: nil, environment: ["XDG_STATE_HOME": "/x/state", "HOME": "/home/u"])
        #expect(s.root == "/x/state/agent")
        #expect(try StateDirectory.resolve(explicit: nil, environment: ["HOME": "/home/u"]).root == "/home/u/.local/state/agent")
    }

    @Test func idsEscapeSafely() {
        #expect(CacheKey.escape("..") == "%2E%2E")
        #expect(CacheKey.escape("/root/.cache/pip") == "%2Froot%2F%2Ecache%2Fpip")
        #expect(!CacheKey.escape("../../etc").contains("/"))
        #expect(CacheKey.unescape(CacheKey.escape("/a b/ü")) == "/a b/ü")
        let long = String(repeating: "x/", count: 200)
        let e = CacheKey.escape(long)
        #expect(e.utf8.count < 255 && !e.contains("/"))
        #expect(CacheKey.escape(long + "y") != e)
        #expect(!CacheKey.isValidScope("..") && !CacheKey.isValidScope("a/b") && CacheKey.isValidScope("fork-pr.12"))
    }

    @Test func scopesIsolate() async throws {
        let t = try TempState()
        let store = CacheStore(state: t.state)
        let a = try await store.acquire(cache("pip"), scope: "trusted")
        let b = try await store.acquire(cache("pip"), scope: "forks")
        #expect(a.hostPath != b.hostPath)
        #expect(a.isNew && b.isNew)
        try t.write("x", a.hostPath + "/only-trusted")
        #expect(!FileManager.default.fileExists(atPath: b.hostPath + "/only-trusted"))
        a.release(); b.release()
        let again = try await store.acquire(cache("pip"), scope: "trusted")
        #expect(!again.isNew)
        #expect(FileManager.default.fileExists(atPath: again.hostPath + "/only-trusted"))
        await #expect(throws: CacheInputError.self) { _ = try await store.acquire(cache("pip"), scope: "../x") }
    }

    @Test func sharedGivesTheSameDirectory() async throws {
        let t = try TempState()
        let store = CacheStore(state: t.state)
        let a = try await store.acquire(cache("npm"), scope: "default")
        let b = try await store.acquire(cache("npm"), scope: "default")
        #expect(a.hostPath == b.hostPath)
        #expect(a.waited == .zero && b.waited == .zero)
        a.release(); b.release()
    }

    @Test func modeAppliesOnCreation() async throws {
        let t = try TempState()
        var c = cache("m")
        c.mode = 0o1777
        let lease = try await CacheStore(state: t.state).acquire(c, scope: "default")
        var st = stat()
        #expect(stat(lease.hostPath, &st) == 0 && st.st_mode & 0o7777 == 0o1777)
        lease.release()
    }

    @Test func privateGivesOwnInstancesAndReusesFreeOnes() async throws {
        let t = try TempState()
        let store = CacheStore(state: t.state)
        let a = try await store.acquire(cache("go", .private), scope: "default")
        let b = try await store.acquire(cache("go", .private), scope: "default")
        #expect(a.hostPath != b.hostPath)
        b.release()
        let c = try await store.acquire(cache("go", .private), scope: "default")
        #expect(c.hostPath == b.hostPath) // the free instance, not a third one
        #expect(!c.isNew)
        a.release(); c.release()
        let d = try await store.acquire(cache("go", .private), scope: "default")
        #expect(d.instance == 0)
        d.release()
    }

    @Test func lockedSerializesInArrivalOrder() async throws {
        let t = try TempState()
        let store = CacheStore(state: t.state)
        let first = try await store.acquire(cache("apt", .locked), scope: "default")
        let order = Recorder()
        let waits = AsyncStream<String>.makeStream()

        func contender(_ name: String) -> Task<Double, Error> {
            Task {
                let lease = try await store.acquire(cache("apt", .locked), scope: "default") { message in
                    #expect(message.contains("waiting for locked cache"))
                    waits.continuation.yield(name)
                }
                await order.add(name)
                let w = lease.use.waitSeconds
                lease.release()
                return w
            }
        }
        var it = waits.stream.makeAsyncIterator()
        let b = contender("B")
        #expect(await it.next() == "B") // B is queued before C arrives
        let c = contender("C")
        #expect(await it.next() == "C")
        await order.add("A releases")
        first.release()
        let wb = try await b.value, wc = try await c.value
        #expect(await order.items == ["A releases", "B", "C"])
        #expect(wb > 0 && wc > 0)
    }

    @Test func cancelledWaiterLeavesTheQueue() async throws {
        let t = try TempState()
        let store = CacheStore(state: t.state)
        let first = try await store.acquire(cache("q", .locked), scope: "default")
        let waits = AsyncStream<Void>.makeStream()
        let waiter = Task { try await store.acquire(cache("q", .locked), scope: "default") { _ in waits.continuation.yield() } }
        var it = waits.stream.makeAsyncIterator()
        await it.next()
        waiter.cancel()
        await #expect(throws: CancellationError.self) { _ = try await waiter.value }
        first.release()
        // The cancelled ticket is gone: the next one gets the cache without waiting.
        let next = try await store.acquire(cache("q", .locked), scope: "default") { _ in Issue.record("should not wait") }
        next.release()
    }

    @Test func lockHolderThatDiesReleasesTheCache() async throws {
        // A real process holds a ticket of the queue (flock(1) on the same files), then is killed.
        let t = try TempState()
        let store = CacheStore(state: t.state)
        let queue = LockedQueue(directory: store.lockPath(scope: "default", id: "k") + "/queue")
        let ticket = try queue.enqueue()
        let p = Process()
        // The shell takes the lock on fd 9 and becomes `sleep`, so the killed process is the holder.
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "exec 9>>\"$0\"; flock -x 9; echo held; exec sleep 1000", ticket.file.path]
        let out = Pipe()
        p.standardOutput = out
        ticket.file.close() // hand the ticket over to the child; its name stays
        try p.run()
        let line = await Task.detached { out.fileHandleForReading.availableData }.value
        #expect(String(decoding: line, as: UTF8.self) == "held\n") // the child has the lock
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        // Bounded: if the dead holder's lock were never released, acquire would wait forever;
        // the deadline turns that hang into a failure.
        let lease = try await withThrowingTaskGroup(of: CacheLease?.self) { group in
            group.addTask { try await store.acquire(cache("k", .locked), scope: "default") { _ in } }
            group.addTask {
                try await Task.sleep(for: .seconds(30))
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            return first
        }
        let acquired = try #require(lease, "the killed holder's lock was not released within 30 s")
        #expect(acquired.waited < .seconds(30))
        acquired.release()
    }

    @Test func pruneHonoursKeepBytesAndSkipsCachesInUse() async throws {
        let t = try TempState()
        let store = CacheStore(state: t.state)
        let blob = String(repeating: "x", count: 256 * 1024)
        for id in ["old", "mid", "new"] {
            let l = try await store.acquire(cache(id), scope: "default")
            try t.write(blob, l.hostPath + "/blob")
            l.release()
        }
        let held = try await store.acquire(cache("old"), scope: "default") // oldest, but in use
        // `old` was just used again; make it the least recently used on disk anyway.
        held.release()
        var meta = AtomicJSON.read(CacheMetadata.self, from: store.entryPath(scope: "default", id: "old") + "/meta.json")!
        meta.lastUsed = Date(timeIntervalSinceNow: -3600)
        try AtomicJSON.write(meta, to: store.entryPath(scope: "default", id: "old") + "/meta.json")
        let holder = try await store.acquire(cache("old"), scope: "default")
        try AtomicJSON.write(meta, to: store.entryPath(scope: "default", id: "old") + "/meta.json")

        let listed = try store.list()
        #expect(listed.map(\.id) == ["old", "mid", "new"])
        #expect(listed[0].inUse && !listed[1].inUse)
        #expect(listed.allSatisfy { $0.sizeBytes >= 256 * 1024 })

        let report = try await store.prune(PruneOptions(keepBytes: 300 * 1024))
        #expect(report.skippedInUse.map(\.id) == ["old"])
        #expect(report.removed.map(\.id) == ["mid", "new"])
        #expect(try store.list().map(\.id) == ["old"])
        holder.release()
        let all = try await store.prune(PruneOptions(all: true))
        #expect(all.removed.map(\.id) == ["old"])
        #expect(try store.list().isEmpty)
    }

    @Test func pruneOlderThan() async throws {
        let t = try TempState()
        let store = CacheStore(state: t.state)
        for id in ["stale", "fresh"] { try await store.acquire(cache(id), scope: "s").release() }
        let path = store.entryPath(scope: "s", id: "stale") + "/meta.json"
        var meta = AtomicJSON.read(CacheMetadata.self, from: path)!
        meta.lastUsed = Date(timeIntervalSinceNow: -8 * 86400)
        try AtomicJSON.write(meta, to: path)
        let r = try await store.prune(PruneOptions(olderThan: AgeText.parse("7d")!))
        #expect(r.removed.map(\.id) == ["stale"])
        #expect(try store.list(scope: "s").map(\.id) == ["fresh"])
    }

    @Test func pruneDeletesReadOnlyTrees() async throws {
        let t = try TempState()
        let store = CacheStore(state: t.state)
        let l = try await store.acquire(cache("gomod"), scope: "default")
        try t.write("m", l.hostPath + "/mod/pkg@v1/go.mod")
        chmod(l.hostPath + "/mod/pkg@v1", 0o555) // as Go leaves its module cache
        chmod(l.hostPath + "/mod", 0o555)
        l.release()
        let r = try await store.prune(PruneOptions(all: true))
        #expect(r.failures.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: store.entryPath(scope: "default", id: "gomod")))
    }

    @Test func defaultBudgetIsAtMostTenGB() throws {
        let t = try TempState()
        let b = CacheGC.defaultBudget(state: t.state)
        #expect(b > 0 && b <= 10 * 1024 * 1024 * 1024)
    }
}
