import Foundation
import Testing

/// `run-job` without `--output` in a folder whose `results` is a symlink: the agent refuses
/// (exit 2, naming the path) and writes nothing through it.
@Suite struct ResultsFolderSymlinkTests {
    @Test func symlinkedDefaultResultsFolderIsRefused() async throws {
        let f = try JobFixture(#"{"version": 1, "id": "victim", "steps": [{"name": "s", "run": "echo ran"}]}"#)
        let outside = try Harness.scratch("outside")
        try Harness.write("precious\n", to: outside + "/victim")
        #expect(symlink(outside, f.dir + "/results") == 0)
        let r = try await Harness.run(["run-job", f.job, "--state-dir", f.state, "--progress", "plain"], cwd: f.dir)
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stderr.contains(f.dir + "/results") && r.stderr.contains("symlink"), "\(r.stderr)")
        #expect(try String(contentsOfFile: outside + "/victim", encoding: .utf8) == "precious\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside) == ["victim"])
        #expect(!r.stderr.contains("ran"))
    }

    @Test func defaultResultsFolderIsWrittenWhenItIsAFolder() async throws {
        let f = try JobFixture(#"{"version": 1, "id": "plain", "steps": [{"name": "s", "run": "true"}]}"#)
        let r = try await Harness.run(["run-job", f.job, "--state-dir", f.state, "--progress", "plain"], cwd: f.dir)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: f.dir + "/results/plain/status.json"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: f.dir + "/results") == ["plain"])
    }
}
