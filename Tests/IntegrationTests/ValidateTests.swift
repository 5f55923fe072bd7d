import Foundation
import Testing

/// `agent validate` as the unprivileged test user: exit 0 with a summary, or exit 2 naming the path.
@Suite struct ValidateTests {
    @Test func aGoodJobIsValid() async throws {
        let r = try await Harness.run(["validate", Harness.fixtures + "/examples/hello.json"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains(#"valid: job "hello", 3 steps (build, check, cleanup)"#), "\(r.stdout)")
        #expect(r.stderr.isEmpty)
    }

    @Test func aBadJobExitsTwoNamingThePath() async throws {
        let dir = try Harness.scratch("validate")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Harness.write("""
        {"version": 1, "steps": [
          {"name": "a", "run": "true"}, {"name": "b", "run": "true"},
          {"name": "c", "run": "true", "mount": ["type=tmpfs,target=/t"]}
        ]}
        """, to: dir + "/job.json")
        let r = try await Harness.run(["validate", "job.json"], cwd: dir)
        #expect(r.status == 2)
        #expect(r.stderr == "agent: job.json: steps[2]: unknown key \"mount\" (did you mean \"mounts\"?)\n")
        #expect(r.stdout.isEmpty)
    }

    @Test func jsonOutput() async throws {
        let dir = try Harness.scratch("validate")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Harness.write(#"{"version": 1, "steps": [{"name": "a", "run": "true", "timeout": 90}]}"#, to: dir + "/bad.json")
        let bad = try await Harness.run(["validate", "--json", dir + "/bad.json"])
        #expect(bad.status == 2)
        let error = try #require(try JSONSerialization.jsonObject(with: bad.stdoutBytes) as? [String: Any])
        #expect(error["valid"] as? Bool == false)
        #expect(error["path"] as? String == "steps[0].timeout")
        #expect(error["message"] as? String == #"expected a duration string like "90s", got number"#)

        let good = try await Harness.run(["validate", "--json", Harness.fixtures + "/examples/tests.json"])
        #expect(good.status == 0, "\(good.stderr)")
        let summary = try #require(try JSONSerialization.jsonObject(with: good.stdoutBytes) as? [String: Any])
        #expect(summary["valid"] as? Bool == true)
        #expect(summary["id"] as? String == "tests")
    }

    @Test func aMissingFileExitsTwo() async throws {
        let r = try await Harness.run(["validate", "/nonexistent/job.json"])
        #expect(r.status == 2)
        #expect(r.stderr == "agent: /nonexistent/job.json: cannot read the job file: No such file or directory\n")
    }
}
