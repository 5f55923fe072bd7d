import Foundation
import Testing
@testable import AgentCore

@Suite struct CacheArchiveTests {
    func fill(_ store: CacheStore, _ t: TempState, id: String) async throws -> String {
        let lease = try await store.acquire(cache(id), scope: "ci")
        try t.write("hello\n", lease.hostPath + "/a.txt")
        try t.write(String(repeating: "z", count: 100_000), lease.hostPath + "/deep/er/b.bin")
        symlink("a.txt", lease.hostPath + "/link")
        chmod(lease.hostPath + "/a.txt", 0o640)
        lease.release()
        return lease.hostPath
    }

    func read(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

    @Test(arguments: ["cache.tar", "cache.tar.gz", "cache.tar.zst"])
    func exportThenImportIntoAFreshStateRoundTrips(_ name: String) async throws {
        let src = try TempState(), dst = try TempState()
        let a = CacheStore(state: src.state), b = CacheStore(state: dst.state)
        _ = try await fill(a, src, id: "ccache")
        let archive = src.state.root + "/" + name
        #expect(try await a.export(scope: "ci", id: "ccache", to: archive) >= 4)
        #expect(try await b.importArchive(scope: "ci", id: "ccache", from: archive) >= 4)
        let lease = try await b.acquire(cache("ccache"), scope: "ci")
        defer { lease.release() }
        #expect(!lease.isNew)
        #expect(read(lease.hostPath + "/a.txt") == "hello\n")
        #expect(read(lease.hostPath + "/deep/er/b.bin")?.count == 100_000)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: lease.hostPath + "/link") == "a.txt")
        var st = stat()
        #expect(lstat(lease.hostPath + "/a.txt", &st) == 0 && st.st_mode & 0o777 == 0o640)
    }

    @Test func corruptArchiveIsRefusedAndTheCacheIsUntouched() async throws {
        let t = try TempState()
        let store = CacheStore(state: t.state)
        let data = try await fill(store, t, id: "keep")
        let good = t.state.root + "/good.tar.gz"
        try await store.export(scope: "ci", id: "keep", to: good)
        // Truncate the compressed stream half-way.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: good))
        let bad = t.state.root + "/bad.tar.gz"
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: bad))
        // And a file that is no archive at all.
        let junk = t.state.root + "/junk.tar"
        try Data((0..<4096).map { UInt8($0 % 251) }).write(to: URL(fileURLWithPath: junk))
        try t.write("changed since export\n", data + "/a.txt")
        for archive in [bad, junk] {
            await #expect(throws: CacheArchiveError.self) { try await store.importArchive(scope: "ci", id: "keep", from: archive) }
            #expect(read(data + "/a.txt") == "changed since export\n")
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: store.entryPath(scope: "ci", id: "keep"))
        #expect(leftovers.sorted() == ["data", "meta.json"])
    }

    @Test func importIntoACacheInUseIsRefused() async throws {
        let t = try TempState()
        let store = CacheStore(state: t.state)
        _ = try await fill(store, t, id: "busy")
        let archive = t.state.root + "/x.tar"
        try await store.export(scope: "ci", id: "busy", to: archive)
        let lease = try await store.acquire(cache("busy"), scope: "ci")
        await #expect(throws: InUseError.self) { try await store.importArchive(scope: "ci", id: "busy", from: archive) }
        lease.release()
        try await store.importArchive(scope: "ci", id: "busy", from: archive)
    }

    @Test func entriesLeadingOutAreRefused() async throws {
        let t = try TempState()
        let outside = t.state.root + "-outside"
        defer { try? FileManager.default.removeItem(atPath: outside) }
        let work = t.state.root + "/w"
        try t.write("x", work + "/payload")
        // GNU tar writes what we ask of it: `..` members and hard links out of the tree.
        for (name, args) in [("dotdot.tar", ["-cf", "-", "--absolute-names", "../w/payload"]),
                             ("abs.tar", ["-cf", "-", "--absolute-names", work + "/payload"])] {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/tar")
            p.arguments = args
            p.currentDirectoryURL = URL(fileURLWithPath: work)
            let out = Pipe()
            p.standardOutput = out
            try p.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            try data.write(to: URL(fileURLWithPath: t.state.root + "/" + name))
            let store = CacheStore(state: t.state)
            await #expect(throws: CacheArchiveError.self) {
                try await store.importArchive(scope: "ci", id: "evil", from: t.state.root + "/" + name)
            }
        }
        #expect(ArchiveReader.safeRelative("./a/./b/") == "a/b")
        #expect(ArchiveReader.safeRelative("a/../../b") == nil)
        #expect(ArchiveReader.safeRelative("/etc/passwd") == nil)
    }

    @Test func unknownExtensionIsAUsageError() async throws {
        let t = try TempState()
        let store = CacheStore(state: t.state)
        _ = try await fill(store, t, id: "x")
        await #expect(throws: CacheInputError.self) { try await store.export(scope: "ci", id: "x", to: t.state.root + "/x.zip") }
        await #expect(throws: CacheInputError.self) { try await store.export(scope: "ci", id: "missing", to: t.state.root + "/x.tar") }
    }
}
