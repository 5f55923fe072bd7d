import Foundation
import Sandbox
import SandboxPolicy
import Synchronization
import Testing
@testable import AgentCore

/// Hostile inputs for space bounds and tree walks: unsized tmpfs, an archive that expands
/// past the budget, a torn locked-queue counter, mode-000 folders, 20,000 nested folders,
/// and a FIFO in a workspace that must be copied.
@Suite struct SpaceAndTreeTests {
    /// Deeper than the 19,000 folders that overflowed the stack of the recursive walks.
    static let depth = 20_000
    /// `depth` nested folders `d/d/d/...` below `root`, with `leaf` written at the bottom.
    static func makeChain(_ root: String, depth: Int, leaf: String? = "leaf.txt") {
        mkdir(root, 0o755)
        var fd = open(root, O_RDONLY | O_DIRECTORY)
        for _ in 0..<depth {
            mkdirat(fd, "d", 0o755)
            let next = openat(fd, "d", O_RDONLY | O_DIRECTORY)
            close(fd)
            fd = next
        }
        if let leaf {
            let f = openat(fd, leaf, O_WRONLY | O_CREAT, 0o644)
            _ = write(f, "x", 1)
            close(f)
        }
        close(fd)
    }

    func tar(_ args: [String], in dir: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/tar")
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
    }

    /// The hex SHA-256 of `text`, by coreutils (a plain file name, so no escaping).
    func sha256(of text: String, in dir: String) throws -> String {
        try text.write(toFile: dir + "/plain", atomically: false, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        p.arguments = [dir + "/plain"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(String(decoding: data, as: UTF8.self).prefix(64))
    }

    // MARK: tmpfs sizes

    @Test func everyBaseTmpfsOfAStepHasTheDefaultSize() {
        let limits = AgentPolicy.TmpfsLimits(defaultSizeBytes: 64 << 20, maxSizeBytes: 1 << 30)
        let root = StepTmpfs.base(uid: 0, limits)
        #expect(Set(root.map(\.target)) == ["/tmp", "/dev/shm", "/root"])
        for m in root {
            guard case .tmpfs(let size, _) = m.kind else { Issue.record("\(m.target) is not a tmpfs"); continue }
            #expect(size == 64 << 20, "\(m.target)")
        }
        #expect(Set(StepTmpfs.base(uid: 1000, limits).map(\.target)) == ["/tmp", "/dev/shm"])
        // A job tmpfs without a size gets the default; one with a size keeps it.
        let sized = StepTmpfs.sized([.tmpfs("/a", size: nil, mode: 0o700), .tmpfs("/b", size: 4096, mode: 0o1777),
                                     .bind("/x", "/y", readOnly: true)], limits)
        #expect(sized[0] == .tmpfs("/a", size: 64 << 20, mode: 0o700))
        #expect(sized[1] == .tmpfs("/b", size: 4096, mode: 0o1777))
        #expect(sized[2] == .bind("/x", "/y", readOnly: true))
    }

    @Test func aJobTmpfsAboveTheMaxIsRefusedNamingThePathAndTheKey() throws {
        var policy = AgentPolicy()
        policy.tmpfs = AgentPolicy.TmpfsLimits(defaultSizeBytes: 1 << 20, maxSizeBytes: 8 << 20)
        let grant = OperatorGrant(policy: policy, protected: ProtectedPaths())
        var step = StepSpec(name: "t", run: .shell("true"))
        step.mounts = [.tmpfs(target: "/ok", size: 8 << 20, mode: 0o1777)]
        step.tmpfs = [.tmpfs(target: "/big", size: 9 << 20, mode: 0o1777)]
        let job = JobSpec(id: "j", steps: [step], baseDirectory: NSTemporaryDirectory())
        do {
            _ = try Admission.admit(job, file: "job.json", grant: grant)
            Issue.record("admitted")
        } catch {
            #expect("\(error)" == "job.json: steps[0].tmpfs[0]: tmpfs size 9437184 is above the agent policy's tmpfs.maxSizeBytes (8388608)")
        }
        step.tmpfs = []
        step.mounts.append(.tmpfs(target: "/huge", size: 1 << 40, mode: 0o1777))
        let again = JobSpec(id: "j", steps: [step], baseDirectory: NSTemporaryDirectory())
        #expect(throws: JobValidationError.self) { _ = try Admission.admit(again, file: "job.json", grant: grant) }
    }

    @Test func tmpfsPolicyKeysLoadAndAreChecked() throws {
        let json = #"{"tmpfs": {"defaultSizeBytes": 1048576, "maxSizeBytes": 2097152}, "cache": {"importMaxEntries": 7}}"#
        let file = NSTemporaryDirectory() + "policy-\(UUID().uuidString.prefix(8)).json"
        defer { unlink(file) }
        try json.write(toFile: file, atomically: false, encoding: .utf8)
        let p = try AgentPolicy.load(path: file)
        #expect(p.tmpfs == AgentPolicy.TmpfsLimits(defaultSizeBytes: 1 << 20, maxSizeBytes: 2 << 20))
        #expect(p.cacheImport.maxEntries == 7)
        #expect(AgentPolicy.default.tmpfs == AgentPolicy.TmpfsLimits())
        let bad = #"{"tmpfs": {"defaultSizeBytes": 4, "maxSizeBytes": 2}}"#
        try bad.write(toFile: file, atomically: false, encoding: .utf8)
        #expect(throws: PolicyError.self) { _ = try AgentPolicy.load(path: file) }
    }

    // MARK: cache import

    @Test func anImportThatExpandsPastTheBudgetFailsAndKeepsTheOldCache() async throws {
        let t = try TempState()
        let store = CacheStore(state: t.state)
        let lease = try await store.acquire(cache("c"), scope: "ci")
        try t.write("old\n", lease.hostPath + "/old.txt")
        lease.release()
        // 20 MB of zeros: a few KB compressed.
        let src = t.state.root + "/src"
        try FileManager.default.createDirectory(atPath: src, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: src + "/zeros", contents: Data(count: 20 << 20))
        try tar(["-czf", t.state.root + "/bomb.tar.gz", "zeros"], in: src)
        let small = (try FileManager.default.attributesOfItem(atPath: t.state.root + "/bomb.tar.gz")[.size] as? Int) ?? 0
        #expect(small < 200_000)
        await #expect(throws: CacheArchiveError.self) {
            try await store.importArchive(scope: "ci", id: "c", from: t.state.root + "/bomb.tar.gz",
                                          limits: ArchiveLimits(maxBytes: 1 << 20))
        }
        let data = store.entryPath(scope: "ci", id: "c") + "/data"
        #expect((try? String(contentsOfFile: data + "/old.txt", encoding: .utf8)) == "old\n")
        #expect(!FileManager.default.fileExists(atPath: data + "/zeros"))
        // Nothing left beside the cache either.
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: store.entryPath(scope: "ci", id: "c"))
        #expect(leftovers.filter { $0.hasPrefix("import-") }.isEmpty)
        // Too many entries: refused the same way.
        for i in 0..<5 { FileManager.default.createFile(atPath: src + "/f\(i)", contents: Data("x".utf8)) }
        try tar(["-cf", t.state.root + "/many.tar", "f0", "f1", "f2", "f3", "f4"], in: src)
        await #expect(throws: CacheArchiveError.self) {
            try await store.importArchive(scope: "ci", id: "c", from: t.state.root + "/many.tar",
                                          limits: ArchiveLimits(maxEntries: 3))
        }
        #expect((try? String(contentsOfFile: data + "/old.txt", encoding: .utf8)) == "old\n")
    }

    @Test func setIDBitsAreDroppedOnImport() async throws {
        let t = try TempState()
        let src = t.state.root + "/src"
        try FileManager.default.createDirectory(atPath: src, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: src + "/tool", contents: Data("#!/bin/sh\n".utf8))
        chmod(src + "/tool", 0o6755)
        try tar(["-cf", t.state.root + "/suid.tar", "tool"], in: src)
        let store = CacheStore(state: t.state)
        try await store.importArchive(scope: "ci", id: "s", from: t.state.root + "/suid.tar")
        var st = stat()
        #expect(lstat(store.entryPath(scope: "ci", id: "s") + "/data/tool", &st) == 0)
        #expect(st.st_mode & 0o7777 == 0o755)
    }

    @Test func theImportSwapLeavesEitherTheOldOrTheNewCacheComplete() async throws {
        let t = try TempState()
        let store = CacheStore(state: t.state)
        let lease = try await store.acquire(cache("swap"), scope: "ci")
        try t.write("old\n", lease.hostPath + "/version")
        lease.release()
        let src = t.state.root + "/src"
        try t.write("new\n", src + "/version")
        try tar(["-cf", t.state.root + "/new.tar", "version"], in: src)
        let data = store.entryPath(scope: "ci", id: "swap") + "/data"
        let seen = Mutex<[String]>([])
        CacheStore.importHook.withLock { hook in
            hook = { stage, path in
                guard path.hasSuffix("/ci/swap/data") else { return }
                // A crash here would leave exactly this on disk.
                let text = (try? String(contentsOfFile: path + "/version", encoding: .utf8)) ?? "missing"
                seen.withLock { $0.append("\(stage): \(text)") }
            }
        }
        defer { CacheStore.importHook.withLock { $0 = nil } }
        try await store.importArchive(scope: "ci", id: "swap", from: t.state.root + "/new.tar")
        #expect(seen.withLock { $0 } == ["before-swap: old\n", "after-swap: new\n"])
        #expect((try? String(contentsOfFile: data + "/version", encoding: .utf8)) == "new\n")
    }

    // MARK: locked queue

    @Test func aTornCounterNeverHandsOutAHeldTicket() throws {
        let t = try TempState()
        let queue = LockedQueue(directory: t.state.root + "/q")
        let a = try queue.enqueue(), b = try queue.enqueue()
        #expect([a.number, b.number] == [0, 1])
        let counter = t.state.root + "/q/counter"
        // A crash after truncation (empty), garbage, and a torn write that reads lower.
        for torn in ["", "garbage", "00000000000000000000\n"] {
            try torn.write(toFile: counter, atomically: false, encoding: .utf8)
            let c = try queue.enqueue()
            #expect(c.number > b.number, "counter \(torn.debugDescription) gave \(c.number)")
            #expect(FileManager.default.fileExists(atPath: queue.ticketPath(a.number)))
            #expect(FileManager.default.fileExists(atPath: queue.ticketPath(b.number)))
            // The held tickets are still locked by their holders.
            let probe = try #require(LockFile(existing: queue.ticketPath(a.number)))
            #expect(!probe.tryLock(exclusive: true))
            probe.close()
            c.leave()
        }
        let text = try String(contentsOfFile: counter, encoding: .utf8)
        #expect(text.count == LockedQueue.counterWidth + 1)
        a.leave()
        b.leave()
    }

    // MARK: GC

    @Test func gcAfterAJobMeasuresOnlyTheCachesItUsed() async throws {
        let t = try TempState()
        let store = CacheStore(state: t.state)
        for id in ["used", "other"] {
            let lease = try await store.acquire(cache(id), scope: "ci")
            try t.write(String(repeating: "x", count: 10_000), lease.hostPath + "/f")
            lease.release()
        }
        // Times are kept to the millisecond: a measure in the very millisecond of the last
        // use cannot prove it came after it, and is (rightly) not taken as current.
        try await Task.sleep(for: .milliseconds(5))
        _ = try await CacheGC.run(state: t.state, budgetBytes: 1 << 40)
        let meta = { (id: String) in AtomicJSON.read(CacheMetadata.self, from: store.entryPath(scope: "ci", id: id) + "/meta.json") }
        let otherBefore = try #require(meta("other"))
        #expect(CacheGC.sizeIsCurrent(otherBefore), "measured right after the use, within the same second")
        let lease = try await store.acquire(cache("used"), scope: "ci")
        try t.write(String(repeating: "y", count: 100_000), lease.hostPath + "/g")
        lease.release()
        try await Task.sleep(for: .milliseconds(5))
        _ = try await CacheGC.runAfterJob(state: t.state, budgetBytes: 1 << 40, used: [CacheGC.UsedCache(scope: "ci", id: "used")])
        let otherAfter = try #require(meta("other"))
        #expect(otherAfter.measured == otherBefore.measured)
        let used = try #require(meta("used"))
        #expect(CacheGC.sizeIsCurrent(used))
        #expect((used.sizeBytes ?? 0) >= 100_000)
    }

    @Test func aMode000FolderIsMeasuredAndPruned() async throws {
        let t = try TempState()
        let store = CacheStore(state: t.state)
        let lease = try await store.acquire(cache("locked-away"), scope: "ci")
        try t.write(String(repeating: "z", count: 2 << 20), lease.hostPath + "/hidden/sub/blob")
        chmod(lease.hostPath + "/hidden/sub", 0)
        chmod(lease.hostPath + "/hidden", 0)
        lease.release()
        let listed = try store.list(scope: "ci")
        #expect((listed.first?.sizeBytes ?? 0) >= 2 << 20)
        // Measuring gives the modes back.
        var st = stat()
        #expect(lstat(lease.hostPath + "/hidden", &st) == 0 && st.st_mode & 0o777 == 0)
        let report = try await store.prune(PruneOptions(all: true))
        #expect(report.removed.count == 1 && report.failures.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: store.entryPath(scope: "ci", id: "locked-away")))
    }

    // MARK: deep and odd trees

    @Test func twentyThousandNestedFoldersAreMeasuredCopiedScannedAndRemoved() throws {
        let t = try TempState()
        let root = t.state.root + "/deep"
        Self.makeChain(root, depth: Self.depth)
        #expect(FileTree.diskUsage(root) > UInt64(Self.depth) * 512)
        // Artifact-style glob search reaches the bottom.
        let found = try GlobSearch.regularFiles(in: t.state.root, matching: ["deep/**/leaf.txt"])
        #expect(found.count == 1)
        #expect(found.first?.hasSuffix("/d/leaf.txt") == true)
        let copy = t.state.root + "/copy"
        #expect(try TreeCopy.copy(root, to: copy).isEmpty)
        #expect(FileTree.diskUsage(copy) > UInt64(Self.depth) * 512)
        #expect(try FileTree.removeTree(root))
        #expect(try FileTree.removeTree(copy))
        #expect(!FileManager.default.fileExists(atPath: root) && !FileManager.default.fileExists(atPath: copy))
    }

    @Test(.timeLimit(.minutes(1)))
    func theCopyFallbackSkipsAFIFOInsteadOfBlocking() throws {
        let t = try TempState()
        let layer = try WorkspaceLayer(stateDirectory: t.state.root, jobID: "fifo", source: nil)
        // Without a source the layer copies its own empty folder: put hostile entries there.
        let src = layer.source.path
        #expect(mkfifo(src + "/pipe", 0o644) == 0)
        try t.write("kept\n", src + "/sub/file.txt")
        symlink("sub/file.txt", src + "/link")
        let warnings = try layer.fallBackToCopy()
        #expect(layer.mode == .copy)
        #expect(warnings.count == 1 && warnings.first?.hasPrefix("pipe:") == true, "\(warnings)")
        let copy = layer.root + "/copy"
        #expect((try? String(contentsOfFile: copy + "/sub/file.txt", encoding: .utf8)) == "kept\n")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: copy + "/link")) == "sub/file.txt")
        #expect(!FileManager.default.fileExists(atPath: copy + "/pipe"))
    }

    // MARK: safe text

    @Test func plainProgressShowsTerminalEscapesEscaped() {
        let r = PlainProgress(output: BufferOutput())
        let line = "\u{1B}]52;c;aGVsbG8=\u{07}\u{1B}]0;title\u{07}done\r"
        let text = r.render(.stepOutput(index: 0, stream: .stdout, line: line, elapsed: .zero)) ?? ""
        #expect(!text.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" && $0 != "\t" })
        #expect(text.contains(#"\x1b]52;c;aGVsbG8=\x07\x1b]0;title\x07done\x0d"#))
        #expect(TerminalText.escaped("tab\tok") == "tab\tok")
    }

    @Test func sha256sumsEscapesNewlineAndCarriageReturnAndVerifies() throws {
        let t = try TempState()
        let dir = t.state.root + "/art"
        try FileManager.default.createDirectory(atPath: dir + "/r", withIntermediateDirectories: true)
        var files: [ArtifactManifest.File] = []
        for (name, body) in [("a\nb", "one"), ("c\rd", "two"), ("e\r\nf", "three"), ("g\\h", "four")] {
            FileManager.default.createFile(atPath: dir + "/r/" + name, contents: Data(body.utf8))
            let hash = try sha256(of: body, in: t.state.root)
            files.append(ArtifactManifest.File(path: "r/" + name, size: UInt64(body.utf8.count), mode: 0o644, sha256: hash))
        }
        let manifest = ArtifactManifest(artifacts: [.init(name: "r", files: files)])
        let sums = manifest.sha256sums()
        #expect(sums.split(separator: "\n", omittingEmptySubsequences: false).count == 5)  // 4 lines + final ""
        #expect(!sums.unicodeScalars.contains("\r"))
        #expect(sums.contains(#"  r/a\nb"#) && sums.contains(#"  r/c\rd"#) && sums.contains(#"  r/e\r\nf"#))
        try sums.write(toFile: dir + "/SHA256SUMS", atomically: false, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        p.arguments = ["-c", "--strict", "SHA256SUMS"]
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
    }
}
