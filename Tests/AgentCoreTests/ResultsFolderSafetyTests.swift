import AgentCore
import FoundationEssentials
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The results folder is reached by descriptor: symlinks and files at the target, or a
/// `results` symlink in the default location, are errors and nothing is written through them.
@Suite struct ResultsFolderSafetyTests {
    func tempDir() throws -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("rfs-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    func entries(_ path: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
    }

    @Test func workingFoldersOfAKilledRunAreSweptWhenStale() throws {
        let base = try tempDir()
        // What a run-job killed with SIGKILL leaves beside its results folder.
        for name in [".out.tmp-old", ".out.tmp-fresh", ".other.tmp-old"] {
            try FileManager.default.createDirectory(atPath: base + "/" + name + "/logs", withIntermediateDirectories: true)
        }
        let dayAgo = timespec(tv_sec: time(nil) - 2 * 24 * 3600, tv_nsec: 0)
        for name in [".out.tmp-old", ".other.tmp-old"] {
            var times = [dayAgo, dayAgo]
            #expect(utimensat(AT_FDCWD, base + "/" + name, &times, 0) == 0)
        }
        let folder = try ResultsFolder.create(at: base + "/out", force: false)
        folder.discard()
        // Only the stale working folder of this very results folder goes.
        #expect(entries(base) == [".other.tmp-old", ".out.tmp-fresh"])
    }

    @Test func symlinkAtTargetIsRefused() throws {
        let base = try tempDir()
        try FileManager.default.createDirectory(atPath: base + "/elsewhere", withIntermediateDirectories: true)
        #expect(symlink(base + "/elsewhere", base + "/out") == 0)
        #expect {
            try ResultsFolder.create(at: base + "/out", force: true)
        } throws: { e in
            guard let f = e as? ResultsFolder.Failure, case .symlink(let p) = f else { return false }
            return p == base + "/out" && f.isUsageError
        }
        #expect(entries(base + "/elsewhere").isEmpty)
        #expect(entries(base) == ["elsewhere", "out"])
    }

    @Test func symlinkedResultsInDefaultLocationIsRefused() throws {
        let base = try tempDir()
        let outside = try tempDir()
        // The attack: `results` points elsewhere, and a file there has the job's name.
        FileManager.default.createFile(atPath: outside + "/job1", contents: Data("precious".utf8))
        #expect(symlink(outside, base + "/results") == 0)
        #expect {
            try ResultsFolder.create(under: base, relative: "results/job1", force: true)
        } throws: { e in
            guard let f = e as? ResultsFolder.Failure, case .symlink(let p) = f else { return false }
            return p == base + "/results"
        }
        #expect(entries(outside) == ["job1"])
        #expect(try String(contentsOfFile: outside + "/job1", encoding: .utf8) == "precious")
    }

    @Test func defaultLocationIsCreatedAndCommitted() throws {
        let base = try tempDir()
        let folder = try ResultsFolder.create(under: base, relative: "results/job1", force: false)
        #expect(folder.finalPath == base + "/results/job1")
        try folder.write(Data("{}".utf8), to: "status.json")
        try folder.write(Data("x".utf8), to: "logs/01-a.log")
        // Path-based writers go through the descriptor path.
        let fd = open(folder.directoryPath + "/log.txt", O_WRONLY | O_CREAT | O_NOFOLLOW, 0o644)
        #expect(fd >= 0)
        close(fd)
        #expect(entries(base + "/results").count == 1)  // only the hidden working folder
        try folder.commit()
        #expect(entries(base + "/results/job1") == ["log.txt", "logs", "status.json"])
        #expect(entries(base + "/results") == ["job1"])
    }

    @Test func fileAtTargetIsRefused() throws {
        let base = try tempDir()
        FileManager.default.createFile(atPath: base + "/out", contents: Data("keep".utf8))
        for force in [false, true] {
            #expect {
                try ResultsFolder.create(at: base + "/out", force: force)
            } throws: { e in
                guard let f = e as? ResultsFolder.Failure, case .notADirectory(let p) = f else { return false }
                return p == base + "/out"
            }
        }
        #expect(try String(contentsOfFile: base + "/out", encoding: .utf8) == "keep")
        #expect(entries(base) == ["out"])
    }

    @Test func symlinkPlantedBeforeCommitIsRefused() throws {
        let base = try tempDir()
        let outside = try tempDir()
        let folder = try ResultsFolder.create(at: base + "/out", force: true)
        try folder.write(Data("{}".utf8), to: "status.json")
        #expect(symlink(outside, base + "/out") == 0)
        #expect(throws: ResultsFolder.Failure.self) { try folder.commit() }
        #expect(entries(outside).isEmpty)
        folder.discard()
        #expect(entries(base) == ["out"])
    }

    @Test func forceReplacesAtomically() throws {
        let base = try tempDir()
        try FileManager.default.createDirectory(atPath: base + "/out/sub", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: base + "/out/old", contents: Data("old".utf8))
        let folder = try ResultsFolder.create(at: base + "/out", force: true)
        try folder.write(Data("new".utf8), to: "status.json")
        // Until the commit the old folder is intact; afterwards only the new one exists,
        // and no displaced copy is left beside it.
        #expect(entries(base + "/out") == ["old", "sub"])
        try folder.commit()
        #expect(entries(base + "/out") == ["logs", "status.json"])
        #expect(entries(base) == ["out"])
    }

    @Test func operatorParentSymlinkIsFollowed() throws {
        let base = try tempDir()
        let real = try tempDir()
        #expect(symlink(real, base + "/link") == 0)
        let folder = try ResultsFolder.create(at: base + "/link/out", force: false)
        try folder.write(Data("{}".utf8), to: "status.json")
        try folder.commit()
        #expect(entries(real + "/out") == ["logs", "status.json"])
    }

    @Test func missingParentsAreCreated() throws {
        let base = try tempDir()
        let folder = try ResultsFolder.create(at: base + "/a/b/out", force: false)
        try folder.commit()
        #expect(entries(base + "/a/b/out") == ["logs"])
    }
}
