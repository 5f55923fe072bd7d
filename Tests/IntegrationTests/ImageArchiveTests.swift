import Foundation
import Testing

/// `agent image import oci-archive:FILE`: a tar of an OCI layout (plain or gzip), as
/// skopeo writes it, from the layouts ci/make-test-images.py pushed from.
@Suite(.serialized) struct ImageArchiveTests {
    func shell(_ script: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-ec", script]
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(script)")
    }

    @Test(arguments: [false, true])
    func anImportedOCIArchiveRunsAJob(gzip: Bool) async throws {
        let dir = try Harness.scratch("oci-archive")
        let tar = dir + "/layered.tar"
        try shell("skopeo copy -q oci:\(ImageTests.layouts)/layered:1 oci-archive:\(tar)" + (gzip ? " && gzip \(tar) && mv \(tar).gz \(tar)" : "")
                  + " && chmod 644 \(tar)")
        let f = try JobFixture("""
        {"version": 1, "id": "archived", "image": "localhost/archived:1", "pull": "never", "steps": [
          {"name": "look", "run": "cat /etc/added; test ! -e /etc/lower-file && echo lower-gone"}
        ]}
        """)
        let imp = try await Harness.run(["image", "import", "--state-dir", f.state, "oci-archive:" + tar, "--tag", "localhost/archived:1"])
        #expect(imp.status == 0, "\(imp.stderr)")
        #expect(imp.stdout.hasPrefix("localhost/archived:1 sha256:"))
        let r = try await f.run(["--policy", ImageTests.policy])
        #expect(r.status == 0, "\(r.stderr)")
        let log = try f.read("logs/01-look.log")
        #expect(log.contains(" out from the upper layer") && log.contains(" out lower-gone"), "\(log)")
        // The staging folder is gone.
        #expect(try FileManager.default.contentsOfDirectory(atPath: f.state + "/images/tmp").isEmpty)
    }

    @Test func anImportedDockerArchiveRunsAJob() async throws {
        let dir = try Harness.scratch("docker-archive")
        let tar = dir + "/layered.tar"
        try shell("skopeo copy -q oci:\(ImageTests.layouts)/layered:1 docker-archive:\(tar):localhost/layered:1 && chmod 644 \(tar)")
        let f = try JobFixture("""
        {"version": 1, "id": "docker-archived", "image": "localhost/saved:1", "pull": "never", "steps": [
          {"name": "look", "run": "cat /etc/added; test ! -e /etc/lower-file && echo lower-gone; echo $IMAGE_VAR"}
        ]}
        """)
        let imp = try await Harness.run(["image", "import", "--state-dir", f.state, "docker-archive:" + tar, "--tag", "localhost/saved:1"])
        #expect(imp.status == 0, "\(imp.stderr)")
        let r = try await f.run(["--policy", ImageTests.policy])
        #expect(r.status == 0, "\(r.stderr)")
        let log = try f.read("logs/01-look.log")
        #expect(log.contains(" out from the upper layer") && log.contains(" out lower-gone") && log.contains(" out from-image"), "\(log)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: f.state + "/images/tmp").isEmpty)
        // A layer the config does not describe (one flipped byte) fails its diff_id check.
        let bad = dir + "/bad.tar"
        try shell("""
        python3 - '\(tar)' '\(bad)' <<'PY'
        import io, json, sys, tarfile
        src = tarfile.open(sys.argv[1]); m = json.load(src.extractfile("manifest.json"))
        with tarfile.open(sys.argv[2], "w") as t:
            for i in src.getmembers():
                if not i.isfile(): continue
                data = src.extractfile(i).read()
                if i.name == m[0]["Layers"][-1]: data = data[:-1] + bytes([data[-1] ^ 1])
                t.addfile(i, io.BytesIO(data))
        PY
        chmod 644 '\(bad)'
        """)
        let refused = try await Harness.run(["image", "import", "--state-dir", dir + "/state2", "docker-archive:" + bad, "--tag", "localhost/bad:1"])
        #expect(refused.status == 3 && refused.stderr.contains("diff_id"), "\(refused.status) \(refused.stderr)")
        // The diff_id is checked while the layer unpacks (one decompression): the unpacked
        // folder of the bad layer never becomes a snapshot, and nothing is left in tmp.
        let snapshots = (try? FileManager.default.contentsOfDirectory(atPath: dir + "/state2/images/snapshots/sha256")) ?? []
        #expect(snapshots.count == 2, "\(snapshots)")  // the two good lower layers only
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/state2/images/tmp").isEmpty)
    }

    @Test func anArchiveEntryOutsideTheLayoutIsNeverWrittenAndALinkedIndexIsNotFollowed() async throws {
        let dir = try Harness.scratch("oci-archive-hostile")
        let tar = dir + "/hostile.tar"
        // Entries that climb out, and index.json as a symlink to a host file: all skipped,
        // so the layout has no index.json and the import fails naming it; nothing escapes.
        try shell("""
        python3 - '\(tar)' <<'PY'
        import io, sys, tarfile
        with tarfile.open(sys.argv[1], "w") as t:
            for name in ["../../../tmp/agent-archive-escape", "/tmp/agent-archive-escape", "blobs/../../agent-archive-escape"]:
                i = tarfile.TarInfo(name); i.size = 1; t.addfile(i, io.BytesIO(b"x"))
            i = tarfile.TarInfo("index.json"); i.type = tarfile.SYMTYPE; i.linkname = "/etc/passwd"; t.addfile(i)
            i = tarfile.TarInfo("oci-layout"); d = b'{"imageLayoutVersion": "1.0.0"}'; i.size = len(d); t.addfile(i, io.BytesIO(d))
        PY
        chmod 644 '\(tar)'
        """)
        let state = dir + "/state"
        let r = try await Harness.run(["image", "import", "--state-dir", state, "oci-archive:" + tar, "--tag", "localhost/hostile:1"])
        #expect(r.status == 3 && r.stderr.contains("index.json"), "\(r.status) \(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/agent-archive-escape"))
        #expect(!FileManager.default.fileExists(atPath: state + "/images/agent-archive-escape"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: state + "/images/tmp").isEmpty)
        let none = try await Harness.run(["image", "import", "--state-dir", state, "oci-archive:" + dir + "/absent.tar", "--tag", "localhost/x:1"])
        #expect(none.status == 3 && none.stderr.contains("absent.tar"), "\(none.stderr)")
    }
}
