import Foundation
import Testing

/// Cache mounts, volumes and binds in real jobs (BuildKit semantics).
@Suite(.serialized) struct CacheJobTests {
    /// Several jobs sharing one state folder.
    struct Shared {
        let dir: String
        var state: String { dir + "/state" }

        init() throws { dir = try Harness.scratch("cachejob") }

        func job(_ name: String, _ json: String) throws -> String {
            let path = dir + "/\(name).json"
            try Harness.write(json, to: path)
            return path
        }

        func run(_ name: String, _ extra: [String] = []) async throws -> Harness.Result {
            try await Harness.run(["run-job", dir + "/\(name).json", "--output", dir + "/results-\(name)",
                                   "--state-dir", state, "--progress", "plain", "--force"] + extra)
        }

        func log(_ name: String, step: String = "01-s") throws -> String {
            try String(contentsOfFile: dir + "/results-\(name)/logs/\(step).log", encoding: .utf8)
        }

        func status(_ name: String) throws -> [String: Any] {
            let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/results-\(name)/status.json"))
            return try JSONSerialization.jsonObject(with: data) as! [String: Any]
        }
    }

    func oneStep(_ id: String, _ run: String, mounts: String, scope: String? = nil) -> String {
        let cache = scope.map { #", "cache": {"scope": "\#($0)"}"# } ?? ""
        return #"{"version": 1, "id": "\#(id)"\#(cache), "steps": [{"name": "s", "run": "\#(run)", "mounts": [\#(mounts)]}]}"#
    }

    @Test func secondJobSeesWhatTheFirstCached() async throws {
        let s = try Shared()
        _ = try s.job("a", oneStep("a", "echo warm > /cache/file", mounts: #""type=cache,target=/cache,id=c1""#))
        _ = try s.job("b", oneStep("b", "cat /cache/file", mounts: #""type=cache,target=/cache,id=c1""#))
        #expect(try await s.run("a").status == 0)
        let b = try await s.run("b")
        #expect(b.status == 0, "\(b.stderr)")
        #expect(try s.log("b").contains("out warm"))
        let caches = (try s.status("b")["steps"] as! [[String: Any]])[0]["caches"] as! [[String: Any]]
        #expect(caches.first?["new"] as? Bool == false)
        #expect(caches.first?["id"] as? String == "c1")
    }

    @Test func scopesIsolateAndReadOnlyCachesRefuseWrites() async throws {
        let s = try Shared()
        _ = try s.job("a", oneStep("a", "echo trusted > /cache/file", mounts: #""type=cache,target=/cache,id=c2""#))
        _ = try s.job("b", oneStep("b", "test ! -e /cache/file && echo isolated", mounts: #""type=cache,target=/cache,id=c2""#, scope: "forks"))
        _ = try s.job("c", oneStep("c", "cat /cache/file; touch /cache/x 2>&1 || true", mounts: #""type=cache,target=/cache,id=c2,ro""#))
        #expect(try await s.run("a").status == 0)
        // The job's own "cache.scope" only repeats the operator's grant.
        #expect(try await s.run("b", ["--cache-scope", "forks"]).status == 0)
        #expect(try s.log("b").contains("out isolated"))
        #expect(try await s.run("c").status == 0)
        let c = try s.log("c")
        #expect(c.contains("out trusted"))
        #expect(c.contains("Read-only file system"))
    }

    /// Review 2.1 item 5: a fork's job asking for the trusted scope is refused, and what a
    /// job granted `forks` caches is not what a `default` job sees.
    @Test func theOperatorGrantsTheScopeAndAForkCannotPoisonDefault() async throws {
        let s = try Shared()
        _ = try s.job("poison", oneStep("poison", "echo poisoned > /cache/file", mounts: #""type=cache,target=/cache,id=c3""#, scope: "default"))
        let refused = try await s.run("poison", ["--cache-scope", "forks"])
        #expect(refused.status == 2, "\(refused.stderr)")
        #expect(refused.stderr.contains(#"cache.scope: "default" is not this job's cache scope ("forks", set by --cache-scope)"#), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: s.dir + "/results-poison"))

        _ = try s.job("fork", oneStep("fork", "echo poisoned > /cache/file; echo planted > /vol/file",
                                      mounts: #""type=cache,target=/cache,id=c3", "type=volume,source=deps,target=/vol""#))
        _ = try s.job("trusted", oneStep("trusted", "test ! -e /cache/file && test ! -e /vol/file && echo clean",
                                         mounts: #""type=cache,target=/cache,id=c3", "type=volume,source=deps,target=/vol""#))
        let fork = try await s.run("fork", ["--cache-scope", "forks"])
        #expect(fork.status == 0, "\(fork.stderr)")
        let trusted = try await s.run("trusted")
        #expect(trusted.status == 0, "\(trusted.stderr)")
        #expect(try s.log("trusted").contains("out clean"))

        let forks = try await Harness.run(["volume", "ls", "--state-dir", s.state, "--scope", "forks"])
        #expect(forks.status == 0 && forks.stdout.contains("forks\tdeps"), "\(forks.stdout) \(forks.stderr)")
        let all = try await Harness.run(["volume", "ls", "--state-dir", s.state, "--json"])
        let listed = (try JSONSerialization.jsonObject(with: all.stdoutBytes) as? [[String: Any]]) ?? []
        #expect(listed.map { "\($0["scope"] ?? "")/\($0["name"] ?? "")" } == ["default/deps", "forks/deps"], "\(all.stdout)")
        let caches = try await Harness.run(["cache", "ls", "--state-dir", s.state, "--scope", "default"])
        #expect(caches.stdout.contains("c3"), "\(caches.stdout)")
        let bad = try await Harness.run(["run-job", s.dir + "/trusted.json", "--state-dir", s.state, "--cache-scope", "../x"])
        #expect(bad.status != 0 && bad.stderr.contains("--cache-scope"), "\(bad.stderr)")
    }

    @Test func lockedCacheSerializesConcurrentJobs() async throws {
        let s = try Shared()
        let script = "echo start-$AGENT_JOB_ID >> /cache/order; sleep 1; echo end-$AGENT_JOB_ID >> /cache/order"
        _ = try s.job("a", oneStep("a", script, mounts: #""type=cache,target=/cache,id=lk,sharing=locked""#))
        _ = try s.job("b", oneStep("b", script, mounts: #""type=cache,target=/cache,id=lk,sharing=locked""#))
        _ = try s.job("show", oneStep("show", "cat /cache/order", mounts: #""type=cache,target=/cache,id=lk""#))
        async let ra = s.run("a")
        async let rb = s.run("b")
        let (a, b) = try await (ra, rb)
        #expect(a.status == 0 && b.status == 0, "\(a.stderr) \(b.stderr)")
        #expect(try await s.run("show").status == 0)
        let lines = try s.log("show").split(separator: "\n").compactMap { $0.split(separator: " ").last.map(String.init) }
        // Never interleaved: each job's start is followed by its own end.
        #expect(lines.count == 4, "\(lines)")
        if lines.count == 4 {
            #expect(lines[0].dropFirst(6) == lines[1].dropFirst(4))
            #expect(lines[2].dropFirst(6) == lines[3].dropFirst(4))
        }
        let waits = [try s.status("a"), try s.status("b")].map {
            (($0["steps"] as! [[String: Any]])[0]["caches"] as! [[String: Any]])[0]["wait_seconds"] as? Double ?? 0
        }
        #expect(waits.max()! > 0.5, "one job must have waited for the lock: \(waits)")
    }

    @Test func privateGivesConcurrentJobsTheirOwnDirectoryAndSharedDoesNot() async throws {
        let s = try Shared()
        let priv = "echo $AGENT_JOB_ID > /cache/owner; sleep 1; cat /cache/owner"
        _ = try s.job("p1", oneStep("p1", priv, mounts: #""type=cache,target=/cache,id=pv,sharing=private""#))
        _ = try s.job("p2", oneStep("p2", priv, mounts: #""type=cache,target=/cache,id=pv,sharing=private""#))
        async let r1 = s.run("p1")
        async let r2 = s.run("p2")
        let (a, b) = try await (r1, r2)
        #expect(a.status == 0 && b.status == 0)
        #expect(try s.log("p1").contains("out p1"))
        #expect(try s.log("p2").contains("out p2"))

        let shared = "touch /cache/$AGENT_JOB_ID; for i in $(seq 1 100); do test -e /cache/s1 && test -e /cache/s2 && echo both && exit 0; sleep 0.1; done; exit 1"
        _ = try s.job("s1", oneStep("s1", shared, mounts: #""type=cache,target=/cache,id=sh""#))
        _ = try s.job("s2", oneStep("s2", shared, mounts: #""type=cache,target=/cache,id=sh""#))
        async let r3 = s.run("s1")
        async let r4 = s.run("s2")
        let (c, d) = try await (r3, r4)
        #expect(c.status == 0 && d.status == 0, "shared caches must see each other's writes")
    }

    @Test func volumesPersistAndBindsOutsideThePolicyAreRefused() async throws {
        let s = try Shared()
        _ = try s.job("w", oneStep("w", "echo kept > /data/v", mounts: #""type=volume,source=vol1,target=/data""#))
        _ = try s.job("r", oneStep("r", "cat /data/v", mounts: #"{"type": "volume", "source": "vol1", "target": "/data", "readonly": true}"#))
        #expect(try await s.run("w").status == 0)
        #expect(try await s.run("r").status == 0)
        #expect(try s.log("r").contains("out kept"))

        _ = try s.job("bad", oneStep("bad", "touch /tmp/ran", mounts: #""type=bind,source=/etc,target=/hostetc""#))
        let bad = try await s.run("bad")
        #expect(bad.status == 2, "\(bad.stderr)")
        #expect(bad.stderr.contains("steps[0].mounts[0]"))
        #expect(!FileManager.default.fileExists(atPath: s.dir + "/results-bad"))
    }

    @Test func killedAgentLeavesTheLockedCacheFree() async throws {
        let s = try Shared()
        _ = try s.job("hold", oneStep("hold", "echo holding; sleep 1000", mounts: #""type=cache,target=/cache,id=held,sharing=locked""#))
        _ = try s.job("next", oneStep("next", "echo got-it", mounts: #""type=cache,target=/cache,id=held,sharing=locked""#))
        let (p, _) = try Harness.start(["run-job", s.dir + "/hold.json", "--output", s.dir + "/results-hold",
                                        "--state-dir", s.state, "--progress", "plain"], until: " holding")
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        let next = try await s.run("next")
        #expect(next.status == 0, "\(next.stderr)")
        let wait = ((try s.status("next")["steps"] as! [[String: Any]])[0]["caches"] as! [[String: Any]])[0]["wait_seconds"] as? Double
        #expect((wait ?? 99) < 5)
    }

    @Test func exportThenImportIntoAFreshStateFolder() async throws {
        let s = try Shared()
        _ = try s.job("fill", oneStep("fill", "echo exported > /cache/f", mounts: #""type=cache,target=/cache,id=mv""#))
        #expect(try await s.run("fill").status == 0)
        let archive = s.dir + "/cache.tar.gz"
        let ex = try await Harness.run(["cache", "export", "--state-dir", s.state, "--scope", "default", "mv", "-o", archive])
        #expect(ex.status == 0, "\(ex.stderr)")
        let fresh = s.dir + "/fresh-state"
        let im = try await Harness.run(["cache", "import", "--state-dir", fresh, "--scope", "default", "mv", archive])
        #expect(im.status == 0, "\(im.stderr)")
        _ = try s.job("use", oneStep("use", "cat /cache/f", mounts: #""type=cache,target=/cache,id=mv""#))
        let r = try await Harness.run(["run-job", s.dir + "/use.json", "--output", s.dir + "/results-use", "--state-dir", fresh, "--progress", "plain"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try s.log("use").contains("out exported"))
    }
}
