import Foundation
import Testing

/// Hostile job files against the real agent: each key that names a host path is refused
/// (exit 2, nothing run, the JSON path and policy key named), and a marker planted where it
/// points is found nowhere in the results, the logs or stderr. The granted use still works.
@Suite(.serialized) struct AdmissionJobTests {
    static let marker = "MARKER-\(UUID().uuidString.prefix(12))"

    /// Every regular file below `dir` that contains `needle`.
    func grep(_ dir: String, _ needle: String) -> [String] {
        var hits: [String] = []
        guard let e = FileManager.default.enumerator(atPath: dir) else { return [] }
        while let rel = e.nextObject() as? String {
            let path = dir + "/" + rel
            var st = stat()
            guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            if let data = FileManager.default.contents(atPath: path), data.range(of: Data(needle.utf8)) != nil { hits.append(path) }
        }
        return hits
    }

    /// A job whose one step would print every file below `/workspace` and write a "ran" note.
    func spyJob(_ keys: String) -> String {
        #"{"version": 1, "id": "spy", \#(keys) "steps": [{"name": "spy", "run": "find / -xdev -type f 2>/dev/null | head -2000 | xargs cat 2>/dev/null; echo ran"}]}"#
    }

    func expectRefused(_ f: JobFixture, _ r: Harness.Result, path: String, key: String,
                       sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == 2, "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.contains("job.json: \(path): "), "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.contains(key), "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(!FileManager.default.fileExists(atPath: f.results), "results were written", sourceLocation: sourceLocation)
        #expect(!r.stdout.contains(Self.marker) && !r.stderr.contains(Self.marker), sourceLocation: sourceLocation)
        #expect(grep(f.dir, Self.marker).allSatisfy { $0.hasPrefix(f.dir + "/planted") }, sourceLocation: sourceLocation)
    }

    @Test func theAgentsHomeAndStateAreNeverAWorkspace() async throws {
        let home = Harness.user.home
        let f = try JobFixture(spyJob(#""workspace": "\#(home)","#))
        let r = try await f.run()
        expectRefused(f, r, path: "workspace", key: "workspaceRoots")
        // Granting a root that contains the home does not help: the home itself is refused.
        let g = try JobFixture(spyJob(#""workspace": "\#(home)","#))
        let r2 = try await g.run(["--workspace-root", (home as NSString).deletingLastPathComponent])
        expectRefused(g, r2, path: "workspace", key: "the agent's home")
        // The state folder, reached through a symlink in the job's folder.
        let h = try JobFixture(spyJob(#""workspace": "state-link","#))
        try FileManager.default.createDirectory(atPath: h.state + "/caches/trusted", withIntermediateDirectories: true)
        try Harness.write(Self.marker, to: h.state + "/caches/trusted/planted")
        Self.chown(h.state)
        symlink(h.state, h.dir + "/state-link")
        let r3 = try await h.run()
        #expect(r3.status == 2, "\(r3.stderr)")
        #expect(!r3.stdout.contains(Self.marker) && !r3.stderr.contains(Self.marker))
    }

    /// `chown -R` to the test user.
    static func chown(_ path: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/chown")
        p.arguments = ["-R", "\(Harness.user.uid):\(Harness.user.gid)", path]
        try? p.run()
        p.waitUntilExit()
    }

    @Test func workspaceOutsideTheJobFolderNeedsAGrant() async throws {
        // A folder of its own to grant: /tmp itself holds the fixtures' state folders.
        let outside = try Harness.scratch("grant") + "/checkout"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        Self.chown(outside)
        try Harness.write(Self.marker, to: outside + "/secret.txt")
        let f = try JobFixture(spyJob(#""workspace": "\#(outside)","#))
        expectRefused(f, try await f.run(), path: "workspace", key: "workspaceRoots")
        let relative = "../" + outside.split(separator: "/").suffix(2).joined(separator: "/")
        let up = try JobFixture(spyJob(#""workspace": "\#(relative)","#))
        expectRefused(up, try await up.run(), path: "workspace", key: "leaves the job file's folder")
        // The operator grants the parent: the same job now runs and sees the file.
        let ok = try JobFixture(#"{"version": 1, "id": "ok", "workspace": "\#(outside)", "steps": [{"name": "cat", "run": "cat /workspace/secret.txt"}]}"#)
        let r = try await ok.run(["--workspace-root", (outside as NSString).deletingLastPathComponent])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try ok.read("logs/01-cat.log").contains(Self.marker))
    }

    @Test func aWorkspaceNamedWithColonsAndCommasIsMountedByDescriptor() async throws {
        let f = try JobFixture(#"{"version": 1, "id": "odd", "workspace": "a:b,c", "steps": [{"name": "ls", "run": "cat /workspace/f; echo new > /workspace/g"}]}"#,
                               files: ["a:b,c/f": "content-of-f", "b,c/f": "WRONG-LAYER"])
        let r = try await f.run()
        #expect(r.status == 0, "\(r.stderr)")
        let log = try f.read("logs/01-ls.log")
        #expect(log.contains("content-of-f") && !log.contains("WRONG-LAYER"), "\(log)")
        #expect(!FileManager.default.fileExists(atPath: f.dir + "/a:b,c/g"), "the source was written")
    }

    @Test func theStateFolderIsNeverARootfs() async throws {
        let f = try JobFixture(spyJob(#""image": {"rootfs": "state"},"#))
        try FileManager.default.createDirectory(atPath: f.state, withIntermediateDirectories: true)
        Self.chown(f.state)
        let r = try await f.run()
        expectRefused(f, r, path: "image.rootfs", key: "the agent's state folder")
        let g = try JobFixture(spyJob(#""image": {"rootfs": "/"},"#))
        expectRefused(g, try await g.run(), path: "image.rootfs", key: "rootfsRoots")
    }

    @Test func aReadOnlyRootfsWorksAndIsNeverWritten() async throws {
        let f = try JobFixture(#"{"version": 1, "id": "rofs", "image": {"rootfs": "rootfs"}, "workspace": "src", "steps": [{"name": "w", "run": "echo hi > /workspace/x; ls /; cat /workspace/x"}]}"#,
                               files: ["src/.keep": ""])
        let copy = Process()
        copy.executableURL = URL(fileURLWithPath: "/bin/cp")
        copy.arguments = ["-a", Harness.busyboxRootfs, f.dir + "/rootfs"]
        try copy.run(); copy.waitUntilExit()
        // The folder lacks every mount point the container needs, and nobody may write it.
        for d in ["dev", "proc", "sys", "tmp", "root", "workspace"] { try? FileManager.default.removeItem(atPath: f.dir + "/rootfs/" + d) }
        let before = try FileManager.default.contentsOfDirectory(atPath: f.dir + "/rootfs").sorted()
        chmod(f.dir + "/rootfs", 0o555)
        let r = try await f.run()
        chmod(f.dir + "/rootfs", 0o755)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try f.read("logs/01-w.log").contains("out hi"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: f.dir + "/rootfs").sorted() == before)
    }

    @Test func aBindSourceSwappedForASymlinkAfterAdmissionIsNeverMounted() async throws {
        let outside = try Harness.scratch("swap-target")
        try Harness.write(Self.marker, to: outside + "/planted")
        let f = try JobFixture(#"""
        {"version": 1, "id": "swap", "steps": [
          {"name": "first", "run": "cat /data/f; echo swap-$((1+1))-now; sleep 2", "mounts": ["type=bind,source=data,target=/data"]},
          {"name": "second", "run": "cat /data/f /data/planted", "mounts": ["type=bind,source=data,target=/data"]}
        ]}
        """#, files: ["data/f": "original"])
        // Step 1 says when it runs; the folder is swapped for a symlink while it sleeps.
        let (p, seen) = try Harness.start(["run-job", f.job, "--output", f.results, "--state-dir", f.state,
                                           "--progress", "plain"], until: "swap-2-now")
        #expect(seen.contains("swap-2-now"), "\(seen)")
        try FileManager.default.moveItem(atPath: f.dir + "/data", toPath: f.dir + "/data.orig")
        symlink(outside, f.dir + "/data")
        await Harness.waitForExit(p)
        let r = Harness.Result(status: p.terminationStatus, stdout: "", stderr: seen, stdoutBytes: Data())
        // The second step's container refuses the swapped path at set-up: an agent error (3).
        #expect(r.status == 3, "\(r.stderr)")
        #expect(try f.read("logs/01-first.log").contains("original"))
        let states = try f.stepStates()
        #expect(states == ["succeeded", "error"], "\(states)")
        #expect(grep(f.results, Self.marker).isEmpty)
        #expect(!r.stderr.contains(Self.marker))
    }

    @Test func aQueuedJobCannotReachOtherJobsResults() async throws {
        let q = try Harness.scratch("queue")
        for d in ["incoming", "done/other-job"] { try FileManager.default.createDirectory(atPath: q + "/" + d, withIntermediateDirectories: true) }
        try Harness.write(Self.marker, to: q + "/done/other-job/status.json")
        let job = spyJob(#""workspace": "../done","#).replacingOccurrences(of: "\"spy\"", with: "\"hostile\"")
        try Harness.write(job, to: q + "/.hostile.json")
        let chown = Process()
        chown.executableURL = URL(fileURLWithPath: "/bin/chown")
        chown.arguments = ["-R", "\(Harness.user.uid):\(Harness.user.gid)", q]
        try chown.run(); chown.waitUntilExit()
        rename(q + "/.hostile.json", q + "/incoming/hostile.json")
        let (p, _) = try Harness.start(["watch", q, "--rescan-interval", "200ms", "--state-dir", q + "-state"], until: "watching")
        defer { p.terminate(); p.waitUntilExit() }
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && !FileManager.default.fileExists(atPath: q + "/failed/hostile/status.json") {
            try await Task.sleep(for: .milliseconds(100))
        }
        let status = try String(contentsOfFile: q + "/failed/hostile/status.json", encoding: .utf8)
        #expect(status.contains("workspace") && status.contains("leaves the job file"), "\(status)")
        #expect(grep(q + "/failed", Self.marker).isEmpty)
    }
}
