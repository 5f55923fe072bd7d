import Foundation
import Testing

/// `agent run-job` end to end: real containers, run as the unprivileged test user.
@Suite(.serialized) struct RunJobTests {
    typealias Fixture = JobFixture

    @Test func threeStepsShareTheWorkspaceAndTheSourceStaysUnchanged() async throws {
        let f = try Fixture("""
        {"version": 1, "id": "three", "workspace": "src", "steps": [
          {"name": "make", "run": "mkdir -p out && echo built > out/thing && echo changed > input.txt"},
          {"name": "use", "run": ["/bin/sh", "-c", "cat out/thing; cat input.txt"]},
          {"name": "cleanup", "run": "rm -rf out", "when": "always"}
        ]}
        """, files: ["src/input.txt": "original\n"])
        let r = try await f.run()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try f.stepStates() == ["succeeded", "succeeded", "succeeded"])
        let log = try f.read("logs/02-use.log")
        #expect(log.contains("out built"))
        #expect(log.contains("out changed"))
        // The source folder is byte-for-byte what it was; nothing new appeared in it.
        #expect(try String(contentsOfFile: f.dir + "/src/input.txt", encoding: .utf8) == "original\n")
        #expect(!FileManager.default.fileExists(atPath: f.dir + "/src/out"))
        #expect(FileManager.default.fileExists(atPath: f.results + "/junit.xml"))
        #expect(try f.read("log.txt").contains("[use] out built"))
        // Timestamped, stream-tagged log lines.
        #expect(log.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z out built$"#, options: .regularExpression) != nil
            || log.split(separator: "\n").contains { $0.hasSuffix(" out built") })
    }

    @Test func failedStepSkipsLaterStepsButAlwaysRuns() async throws {
        let f = try Fixture("""
        {"version": 1, "id": "fails", "steps": [
          {"name": "ok", "run": "true"},
          {"name": "broken", "run": "echo about to fail; exit 3"},
          {"name": "never", "run": "echo should not run"},
          {"name": "on-fail", "run": "echo cleaning", "when": "on_failure"},
          {"name": "finally", "run": "echo finally", "when": "always"}
        ]}
        """)
        let r = try await f.run()
        #expect(r.status == 1, "\(r.stderr)")
        #expect(try f.stepStates() == ["succeeded", "failed", "skipped", "succeeded", "succeeded"])
        #expect(try f.steps()[1]["exit_code"] as? Int == 3)
        #expect(try f.status()["state"] as? String == "failed")
        #expect(r.stderr.contains("ERROR: exit status 3"))
        #expect(r.stderr.contains("SKIPPED"))
        let junit = try f.read("junit.xml")
        #expect(junit.contains("<failure"))
        #expect(junit.contains("<skipped"))
    }

    @Test func allowFailureDoesNotFailTheJob() async throws {
        let f = try Fixture("""
        {"version": 1, "id": "lenient", "steps": [
          {"name": "flaky", "run": "exit 1", "allow_failure": true},
          {"name": "after", "run": "true"}
        ]}
        """)
        let r = try await f.run()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try f.stepStates() == ["failed", "succeeded"])
        #expect(try f.status()["state"] as? String == "succeeded")
    }

    @Test func stepTimeoutEndsWithinTimeoutPlusGrace() async throws {
        let f = try Fixture("""
        {"version": 1, "id": "slow", "steps": [
          {"name": "sleepy", "run": "sleep 1000", "timeout": "1s"},
          {"name": "after", "run": "true"}
        ]}
        """)
        let start = Date()
        let r = try await f.run(["--grace", "2"])
        let elapsed = Date().timeIntervalSince(start)
        #expect(r.status == 1, "\(r.stderr)")
        #expect(try f.stepStates() == ["timed_out", "skipped"])
        #expect(elapsed < 1 + 2 + 20, "took \(elapsed)s")
        let d = try f.steps()[0]["duration_seconds"] as! Double
        #expect(d >= 1 && d < 1 + 2 + 5)
    }

    @Test func jobTimeoutMarksTheJobTimedOut() async throws {
        let f = try Fixture("""
        {"version": 1, "id": "slowjob", "timeout": "1s", "steps": [
          {"name": "sleepy", "run": "sleep 1000"}
        ]}
        """)
        let r = try await f.run(["--grace", "1"])
        #expect(r.status == 1)
        #expect(try f.status()["state"] as? String == "timed_out")
    }

    @Test func sigtermCancelsAndStillWritesResults() async throws {
        let f = try Fixture("""
        {"version": 1, "id": "cancel-me", "steps": [
          {"name": "long", "run": "echo $((6*7))-ready; sleep 1000"},
          {"name": "next", "run": "true"}
        ]}
        """)
        // Wait until the step has printed, then SIGTERM the agent. The header shows the
        // command text; only the output line has "42-ready".
        let (p, seen) = try Harness.start(["run-job", f.job, "--output", f.results, "--state-dir", f.state,
                                           "--progress", "plain", "--grace", "2"], until: "42-ready")
        #expect(seen.contains("42-ready"))
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        #expect(p.terminationStatus == 130)
        #expect(try f.stepStates() == ["cancelled", "cancelled"])
        #expect(try f.status()["state"] as? String == "cancelled")
        #expect(FileManager.default.fileExists(atPath: f.results + "/junit.xml"))
        #expect(FileManager.default.fileExists(atPath: f.results + "/logs/01-long.log"))
    }

    @Test func endlessOutputIsCappedAndTheJobEnds() async throws {
        let f = try Fixture("""
        {"version": 1, "id": "chatty", "steps": [
          {"name": "spam", "run": "yes 0123456789 | head -n 500000"}
        ]}
        """)
        let r = try await f.run(["--log-limit", "1048576"])
        #expect(r.status == 0, "\(r.stderr.suffix(500))")
        let attrs = try FileManager.default.attributesOfItem(atPath: f.results + "/logs/01-spam.log")
        let size = (attrs[.size] as? NSNumber)?.intValue ?? 0
        #expect(size < 2 << 20)
        #expect(try f.read("logs/01-spam.log").contains("[log truncated: "))
    }

    @Test func progressJSONIsOneObjectPerLine() async throws {
        let f = try Fixture("""
        {"version": 1, "id": "jsonprog", "steps": [{"name": "hello", "run": "echo hi"}]}
        """)
        let r = try await Harness.run(["run-job", f.job, "--output", f.results, "--state-dir", f.state, "--progress", "json"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stderr.split(separator: "\n").filter { !$0.isEmpty }
        #expect(lines.count >= 4)
        var types: [String] = []
        for line in lines {
            let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(obj != nil, "not JSON: \(line)")
            if let t = obj?["type"] as? String { types.append(t) }
        }
        #expect(types.first == "job_started")
        #expect(types.contains("step_started"))
        #expect(types.contains("log"))
        #expect(types.last == "job_finished")
    }

    @Test func invalidJobsExitTwoNamingThePath() async throws {
        let cases: [(String, String)] = [
            (#"{"version": 1, "steps": [{"name": "a", "run": "true", "mount": []}]}"#, "steps[0]: unknown key \"mount\" (did you mean \"mounts\"?)"),
            (#"{"version": 1, "steps": []}"#, "steps"),
            (#"{"version": 1, "steps": [{"name": "a", "run": "true"}, {"name": "a", "run": "true"}]}"#, "steps[1].name"),
            (#"{"version": 1, "steps": [{"name": "a", "run": "true", "timeout": "soon"}]}"#, "steps[0].timeout"),
            (#"{"version": 2, "steps": [{"name": "a", "run": "true"}]}"#, "version"),
            (#"{"version": 1, "steps": [{"name": "a", "run": 5}]}"#, "steps[0].run"),
            ("{not json", "job.json"),
        ]
        for (json, expected) in cases {
            let f = try Fixture(json)
            let r = try await f.run()
            #expect(r.status == 2, "\(json): \(r.stderr)")
            #expect(r.stderr.contains(expected), "\(json): \(r.stderr)")
            // Nothing half-written.
            #expect(!FileManager.default.fileExists(atPath: f.results))
        }
    }

    @Test func agentErrorExitsThreeNamingTheStage() async throws {
        let f = try Fixture("""
        {"version": 1, "id": "noroot", "image": {"rootfs": "does-not-exist"}, "steps": [{"name": "a", "run": "true"}]}
        """)
        let r = try await f.run()
        // A missing rootfs is caught either by validation (2) or by the sandbox (3, naming the stage).
        #expect(r.status == 2 || r.status == 3, "\(r.stderr)")
        #expect(r.stderr.contains("does-not-exist"))
    }

    @Test func nonEmptyOutputIsRefusedWithoutForce() async throws {
        let f = try Fixture(#"{"version": 1, "id": "twice", "steps": [{"name": "a", "run": "true"}]}"#)
        #expect(try await f.run().status == 0)
        let again = try await f.run()
        #expect(again.status == 2)
        #expect(again.stderr.contains("--force"))
        #expect(try await f.run(["--force"]).status == 0)
    }

    @Test func stepsRunAsUnprivilegedHostUser() async throws {
        let f = try Fixture(#"{"version": 1, "id": "whoami", "steps": [{"name": "ids", "run": "id -u; stat -c 'host-root %u' /usr"}]}"#)
        let r = try await f.run()
        #expect(r.status == 0, "\(r.stderr)")
        let log = try f.read("logs/01-ids.log")
        #expect(log.contains("out 0"))
        // uid 0 inside is not host root: host root's files show as the overflow uid. (The
        // step's own /proc/self/uid_map is its nested user namespace's, 1:1: locked mounts.)
        #expect(log.contains("out host-root 65534"), "\(log)")
        #expect(Harness.user.uid != 0)
    }
}

/// A killed agent cannot clean up; the next run on the same state folder removes the
/// workspace layer it left (its lock is free), and never the layer of a running job.
@Suite struct StaleWorkspaceLayerTests {
    @Test func layerOfAKilledAgentIsRemovedByTheNextRun() async throws {
        let f = try JobFixture("""
        {"version": 1, "id": "killed", "steps": [{"name": "long", "run": "echo $((6*7))-ready; sleep 1000"}]}
        """)
        let (p, seen) = try Harness.start(["run-job", f.job, "--output", f.results, "--state-dir", f.state,
                                           "--progress", "plain"], until: "42-ready")
        #expect(seen.contains("42-ready"))
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        let jobs = f.state + "/jobs"
        let left = try FileManager.default.contentsOfDirectory(atPath: jobs)
        #expect(left.count == 1, "the killed run's layer: \(left)")

        try Harness.write(#"{"version": 1, "id": "next", "steps": [{"name": "s", "run": "true"}]}"#, to: f.dir + "/next.json")
        let r = try await Harness.run(["run-job", f.dir + "/next.json", "--output", f.dir + "/next-results",
                                       "--state-dir", f.state, "--progress", "plain"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: jobs).isEmpty)
        let log = try String(contentsOfFile: f.dir + "/next-results/log.txt", encoding: .utf8)
        #expect(log.contains("the workspace layer of an agent that is gone") && log.contains(left[0]))
    }
}
