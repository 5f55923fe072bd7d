import Foundation
import Testing

/// `services:` end to end: real PostgreSQL and busybox httpd servers as services of a real
/// job, run by the installed agent as the unprivileged test user. Hostile and failing
/// cases: a service that never gets ready fails the job naming it, a crash is reported, a
/// cancel stops the services, secrets reach only the service that names them, and no
/// process of a job survives it.
@Suite(.serialized) struct ServicesTests {
    /// The folder of Debian's PostgreSQL server binaries (initdb, postgres, psql).
    static var postgresBin: String? {
        let base = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []).sorted { (Int($0) ?? 0) > (Int($1) ?? 0) }
        return versions.map { "\(base)/\($0)/bin" }.first { FileManager.default.isExecutableFile(atPath: $0 + "/postgres") }
    }

    /// Host uids the agent's containers may run as: the test user's, and its subordinate
    /// range from /etc/subuid (a non-zero uid inside a service is one of those outside).
    static let jobUIDs: [ClosedRange<UInt32>] = {
        let u = Harness.user
        var ranges = [u.uid...u.uid]
        let lines = ((try? String(contentsOfFile: "/etc/subuid", encoding: .utf8)) ?? "").split(separator: "\n")
        for line in lines {
            let f = line.split(separator: ":")
            guard f.count == 3, f[0] == u.name || f[0] == "\(u.uid)", let start = UInt32(f[1]), let count = UInt32(f[2]), count > 0 else { continue }
            ranges.append(start...(start + count - 1))
        }
        return ranges
    }()

    /// Processes of the job's uids whose command line contains `marker`, as "pid uid: cmdline".
    /// Only those processes' command lines are read: reading another's can block while its
    /// memory map is locked (a core dump, an exec), so nothing else on the machine is touched.
    static func survivors(_ marker: String) -> [String] {
        var out: [String] = []
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where Int32(name) != nil {
            guard let status = try? String(contentsOfFile: "/proc/\(name)/status", encoding: .utf8),
                  let uidText = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") })?.split(separator: "\t").dropFirst().first,
                  let uid = UInt32(uidText), jobUIDs.contains(where: { $0.contains(uid) }),
                  let cmd = FileManager.default.contents(atPath: "/proc/\(name)/cmdline") else { continue }
            let text = String(decoding: cmd.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
            if text.contains(marker) { out.append("\(name) \(uid): \(text)") }
        }
        return out
    }

    /// `survivors` off the cooperative pool (it reads /proc synchronously).
    static func survivorsOffPool(_ marker: String) async -> [String] {
        (try? await TestInternet.offPool { survivors(marker) }) ?? []
    }

    /// The host uids of `survivors` lines.
    static func hostUIDs(_ lines: [String]) -> [String] {
        lines.compactMap { $0.split(separator: " ").dropFirst().first.map { String($0.dropLast()) } }
    }

    /// No process of the job is left (polled briefly: the kernel reaps asynchronously).
    static func expectNoSurvivors(_ marker: String) async {
        var left: [String] = []
        for _ in 0..<50 {
            left = await survivorsOffPool(marker)
            if left.isEmpty { return }
            try? await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("processes of the job survived it: \(left)")
    }

    /// `Harness.start` off the cooperative pool: it blocks reading stderr until the marker.
    static func start(_ args: [String], until marker: String) async throws -> (process: Process, stderr: String) {
        final class Box: @unchecked Sendable { var value: (Process, String)? }
        let box = Box()
        try await TestInternet.offPool { box.value = try Harness.start(args, until: marker) }
        return box.value!
    }

    func services(_ f: JobFixture) throws -> [[String: Any]] { try f.status()["services"] as? [[String: Any]] ?? [] }

    /// A copy of the busybox rootfs fixture inside the job's folder (a rootfs the job may name),
    /// owned by the test user; made off the cooperative pool (see `Harness.readToEnd`).
    func busybox(into f: JobFixture) async throws {
        let status = try await TestInternet.offPool {
            try TestInternet.sh("cp -a \(Harness.busyboxRootfs) \(f.dir)/bb && chown -R \(Harness.user.uid):\(Harness.user.gid) \(f.dir) && echo copied")
        }
        #expect(status.contains("copied"))
    }

    @Test(.enabled(if: postgresBin != nil, "Debian's postgresql package is not installed (ci/test.sh installs it)"))
    func postgresAndHttpdServeTheStepsByAlias() async throws {
        let bin = Self.postgresBin!
        let u = Harness.user
        let marker = "svc-pg-\(UUID().uuidString.prefix(6))"
        let suite = #"""
        ok=0; fail=0; cases=""
        check() { if out=$(sh -c "$2" 2>&1); then ok=$((ok+1)); cases="$cases<testcase name=\"$1\"/>"; else fail=$((fail+1)); cases="$cases<testcase name=\"$1\"><failure message=\"failed\"/></testcase>"; fi; echo "$1: $out"; }
        check select-one "psql -h db -U postgres -tAc 'select 1' | grep -qx 1"
        check create-and-count "psql -h db -U postgres -v ON_ERROR_STOP=1 -tAc 'create table t(x int); insert into t values (1),(2); select count(*) from t' | grep -qx 2"
        check web "python3 -c \"import urllib.request; print(urllib.request.urlopen('http://web:8081/').read().decode())\" | grep -q hello-from-web"
        echo "<testsuite name=\"services\" tests=\"$((ok+fail))\" failures=\"$fail\">$cases</testsuite>" > junit.xml
        """#
        let job: [String: Any] = [
            "version": 1, "id": "svc-pg",
            "services": [
                ["name": "host", "alias": ["db", "postgres.local"], "user": "\(u.uid):\(u.gid)",
                 "variables": ["PATH": "\(bin):/usr/bin:/bin", "MARKER": marker],
                 "command": ["sh", "-c", "initdb -D /tmp/pg -U postgres --auth=trust >/dev/null && exec postgres -D /tmp/pg -k /tmp -c listen_addresses=127.0.0.1 -p 5432 -c cluster_name=\(marker)"],
                 "healthcheck": ["tcp": 5432, "timeout": "60s"]],
                ["name": ["rootfs": "bb"], "alias": "web",
                 "command": ["sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 127.0.0.1:8081 -h /www # \(marker)"],
                 "healthcheck": ["tcp": 8081]],
            ],
            "steps": [
                ["name": "select", "run": "psql -h db -U postgres -c 'select 1' && getent hosts db web postgres.local",
                 "env": ["PATH": "\(bin):/usr/bin:/bin"]],
                ["name": "suite", "type": "test", "workspace": "overlay", "reports": ["junit.xml"], "run": suite,
                 "env": ["PATH": "\(bin):/usr/bin:/bin"]],
            ],
        ]
        let text = String(decoding: try JSONSerialization.data(withJSONObject: job), as: UTF8.self)
        let f = try JobFixture(text)
        try await busybox(into: f)
        let r = try await f.run()
        #expect(r.status == 0, "\(r.stderr)\n\((try? f.read("logs/service-db.log")) ?? "")")
        #expect(try f.stepStates() == ["succeeded", "succeeded"])
        let select = try f.read("logs/01-select.log")
        #expect(select.contains("(1 row)"), "\(select)")
        #expect(select.contains("127.0.0.1") && select.contains("postgres.local"), "\(select)")
        let status = try f.status()
        let tests = status["tests"] as? [String: Any]
        #expect(tests?["tests"] as? Int == 3, "\(tests ?? [:])")
        let suiteLog = try f.read("logs/02-suite.log")
        #expect(tests?["failures"] as? Int == 0, "\(suiteLog)")
        #expect(try f.read("junit.xml").contains("create-and-count"))
        let svc = try services(f)
        #expect(svc.map { $0["alias"] as? String } == ["db", "web"])
        #expect(svc.map { $0["state"] as? String } == ["healthy", "healthy"])
        #expect(svc.map { $0["health"] as? String } == ["tcp 5432", "tcp 8081"])
        #expect(svc[0]["log"] as? String == "logs/service-db.log")
        #expect((svc[0]["waited_seconds"] as? Double ?? 99) < 60)
        // The server's own output is in its log (it logs to stderr).
        #expect(try f.read("logs/service-db.log").contains("database system is ready to accept connections"))
        for step in try f.steps() { #expect((step["network"] as? [String: Any])?["mode"] as? String == "none") }
        #expect(r.stderr.contains("service db: healthy"), "\(r.stderr)")
        await Self.expectNoSurvivors(marker)
    }

    @Test func aServiceThatNeverListensFailsTheJobNamingIt() async throws {
        let marker = "svc-never-\(UUID().uuidString.prefix(6))"
        let f = try JobFixture("""
        {"version": 1, "id": "svc-never", "services": [
          {"name": "host", "alias": "never", "command": ["sh", "-c", "while :; do sleep 1; done # \(marker)"],
           "healthcheck": {"tcp": 5999, "timeout": "2s"}}
        ], "steps": [{"name": "first", "run": "echo ran"}, {"name": "cleanup", "run": "echo ran", "when": "always"}]}
        """)
        let start = Date()
        let r = try await f.run(["--grace", "2"])
        let elapsed = Date().timeIntervalSince(start)
        #expect(r.status == 1, "\(r.stderr)")
        #expect(elapsed < 2 + 20, "took \(elapsed)s")
        #expect(try f.stepStates() == ["skipped", "skipped"])
        let why = #"service "never" (host) did not accept connections on port 5999 within 2s"#
        #expect(try f.steps()[0]["reason"] as? String == "a service is not ready: " + why)
        #expect(try f.status()["error"] as? String == why)
        #expect(try services(f).first?["state"] as? String == "unhealthy")
        #expect(try f.read("log.txt").contains(why))
        #expect(r.stderr.contains(why), "\(r.stderr)")
        await Self.expectNoSurvivors(marker)

        // With allow_unhealthy it is a warning and the steps run.
        let g = try JobFixture("""
        {"version": 1, "id": "svc-lenient", "services": [
          {"name": "host", "alias": "never", "command": ["sh", "-c", "while :; do sleep 1; done # \(marker)"],
           "healthcheck": {"tcp": 5999, "timeout": "1s"}, "allow_unhealthy": true}
        ], "steps": [{"name": "first", "run": "echo ran"}]}
        """)
        let s = try await g.run()
        #expect(s.status == 0, "\(s.stderr)")
        #expect(try g.stepStates() == ["succeeded"])
        #expect(try services(g).first?["state"] as? String == "unhealthy")
        #expect((try g.status()["warnings"] as? [String] ?? []).contains { $0.contains("did not accept connections on port 5999") })
        await Self.expectNoSurvivors(marker)
    }

    @Test func aServiceThatCrashesMidJobIsReportedAndTheStepsGoOn() async throws {
        let marker = "svc-crash-\(UUID().uuidString.prefix(6))"
        let f = try JobFixture("""
        {"version": 1, "id": "svc-crash", "services": [
          {"name": "host", "alias": "flaky", "command": ["sh", "-c", "echo starting; sleep 1; echo dying >&2; exit 7 # \(marker)"]}
        ], "steps": [{"name": "wait", "run": "sleep 3"}, {"name": "after", "run": "echo still-here"}]}
        """)
        let r = try await f.run()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try f.stepStates() == ["succeeded", "succeeded"])
        let svc = try services(f).first ?? [:]
        #expect(svc["state"] as? String == "exited")
        #expect(svc["exit_code"] as? Int == 7)
        #expect(svc["health"] as? String == "none")
        #expect((try f.status()["warnings"] as? [String] ?? []).contains { $0.contains(#"service "flaky" (host) exited early with exit code 7"#) })
        let log = try f.read("logs/service-flaky.log")
        #expect(log.contains("out starting") && log.contains("err dying"), "\(log)")
        await Self.expectNoSurvivors(marker)
    }

    @Test func cancellingTheJobStopsItsServices() async throws {
        let marker = "svc-cancel-\(UUID().uuidString.prefix(6))"
        let f = try JobFixture("""
        {"version": 1, "id": "svc-cancel", "services_stop_grace": "1s", "services": [
          {"name": "host", "alias": "stubborn", "command": ["sh", "-c", "trap '' TERM; while :; do sleep 1; done # \(marker)"]},
          {"name": "host", "alias": "polite", "command": ["sh", "-c", "while :; do sleep 1; done # \(marker)"]}
        ], "steps": [{"name": "long", "run": "echo $((6*7))-ready; sleep 1000"}]}
        """)
        let (p, seen) = try await Self.start(["run-job", f.job, "--output", f.results, "--state-dir", f.state,
                                           "--progress", "plain", "--grace", "1"], until: "42-ready")
        #expect(seen.contains("42-ready"))
        let running = await Self.survivorsOffPool(marker)
        #expect(running.count >= 2, "the services are not running: \(running)")
        // Root inside the service, the agent's unprivileged user outside: never host root.
        #expect(Self.hostUIDs(running).allSatisfy { $0 == "\(Harness.user.uid)" }, "\(running)")
        kill(p.processIdentifier, SIGTERM)
        await Harness.waitForExit(p)
        #expect(p.terminationStatus == 130)
        #expect(try f.stepStates() == ["cancelled"])
        let svc = try services(f)
        #expect(svc.map { $0["state"] as? String } == ["stopped", "stopped"])
        // The one that ignores SIGTERM was killed after the grace.
        #expect(svc.first?["signal"] as? Int == 9, "\(svc)")
        await Self.expectNoSurvivors(marker)
    }

    @Test func aCancelOrTheJobTimeoutDuringTheHealthWaitEndsItAtOnce() async throws {
        let marker = "svc-waitcancel-\(UUID().uuidString.prefix(6))"
        let job = """
        {"version": 1, "id": "svc-waitcancel", "timeout": "%@", "services": [
          {"name": "host", "alias": "slow", "command": ["sh", "-c", "while :; do sleep 1; done # \(marker)"],
           "healthcheck": {"tcp": 5998, "timeout": "120s"}}
        ], "steps": [{"name": "s", "run": "echo ran"}]}
        """
        let f = try JobFixture(job.replacingOccurrences(of: "%@", with: "1h"))
        let start = Date()
        let (p, seen) = try await Self.start(["run-job", f.job, "--output", f.results, "--state-dir", f.state,
                                           "--progress", "plain", "--grace", "1"], until: "service slow: started")
        #expect(seen.contains("waiting for tcp 5998"), "\(seen)")
        kill(p.processIdentifier, SIGTERM)
        await Harness.waitForExit(p)
        #expect(p.terminationStatus == 130)
        #expect(Date().timeIntervalSince(start) < 20)
        #expect(try f.stepStates() == ["cancelled"])
        await Self.expectNoSurvivors(marker)

        // The job's timeout (2s) is shorter than the wait's own (120s): the job ends at it.
        let g = try JobFixture(job.replacingOccurrences(of: "%@", with: "2s"))
        let t0 = Date()
        let r = try await g.run(["--grace", "1"])
        #expect(r.status == 1, "\(r.stderr)")
        #expect(Date().timeIntervalSince(t0) < 2 + 20)
        #expect(try g.stepStates() == ["skipped"])
        #expect((try g.status()["error"] as? String ?? "").contains("(the rest of the job's timeout)"))
        await Self.expectNoSurvivors(marker)
    }

    @Test func aServiceDiesWithAKilledAgent() async throws {
        let marker = "svc-agentkill-\(UUID().uuidString.prefix(6))"
        let f = try JobFixture("""
        {"version": 1, "id": "svc-agentkill", "services": [
          {"name": "host", "alias": "orphan", "command": ["sh", "-c", "while :; do sleep 1; done # \(marker)"]}
        ], "steps": [{"name": "long", "run": "echo $((6*7))-ready; sleep 1000"}]}
        """)
        let (p, seen) = try await Self.start(["run-job", f.job, "--output", f.results, "--state-dir", f.state,
                                           "--progress", "plain"], until: "42-ready")
        #expect(seen.contains("42-ready"))
        #expect(!(await Self.survivorsOffPool(marker)).isEmpty)
        kill(p.processIdentifier, SIGKILL)
        await Harness.waitForExit(p)
        await Self.expectNoSurvivors(marker)
    }

    /// The disk guard watches a service as it watches a step. Proved without filling the
    /// shared disk (which would disturb DiskGuardTests and every other job on the machine):
    /// the policy's reserve is above what is free, so the first check finds the breach.
    @Test func theDiskGuardKillsAServiceNamingTheKey() async throws {
        let marker = "svc-disk-\(UUID().uuidString.prefix(6))"
        let f = try JobFixture("""
        {"version": 1, "id": "svc-disk", "services": [
          {"name": {"rootfs": "bb"}, "alias": "writer", "command": ["sh", "-c", "while :; do sleep 1; done # \(marker)"]}
        ], "steps": [{"name": "wait", "run": "sleep 2"}]}
        """)
        try await busybox(into: f)
        var st = statvfs()
        #expect(statvfs(f.dir, &st) == 0)
        let policy = f.dir + "/disk-policy.json"
        try Harness.write(#"{"minFreeDiskBytes": \#(UInt64(st.f_bavail) * UInt64(st.f_frsize) + (1 << 40))}"#, to: policy)
        let r = try await f.run(["--policy", policy])
        // The guard is the host's bound, not a per-container quota: the step is killed too.
        #expect(r.status == 1, "\(r.stderr)")
        let svc = try services(f).first ?? [:]
        #expect(svc["state"] as? String == "exited", "\(svc)")
        #expect((svc["reason"] as? String ?? "").contains("minFreeDiskBytes"), "\(svc)")
        await Self.expectNoSurvivors(marker)
    }

    @Test func aSecretReachesOnlyTheServiceThatNamesIt() async throws {
        let value = "svc-secret-\(UUID().uuidString.prefix(8))"
        let f = try JobFixture(#"""
        {"version": 1, "id": "svc-secret", "secrets": {"tok": {"required": true}}, "services": [
          {"name": "host", "alias": "holder", "secrets": [{"id": "tok", "env": "TOKEN"}, "tok"],
           "command": ["sh", "-c", "echo env:$TOKEN; echo len:${#TOKEN}; echo file:$(cat /run/secrets/tok); exec sleep 1000"]},
          {"name": "host", "alias": "other",
           "command": ["sh", "-c", "echo env:${TOKEN:-none}; test -e /run/secrets/tok || echo file:none; exec sleep 1000"]}
        ], "steps": [{"name": "step", "run": "sleep 1; echo env:${TOKEN:-none}; test -e /run/secrets/tok || echo file:none"}]}
        """#)
        let r = try await f.run(["--secret", "id=tok,env=SVC_TOKEN"], environment: ["SVC_TOKEN": value])
        #expect(r.status == 0, "\(r.stderr)")
        let holder = try f.read("logs/service-holder.log")
        #expect(holder.contains("out env:***") && holder.contains("out len:\(value.utf8.count)") && holder.contains("out file:***"), "\(holder)")
        let other = try f.read("logs/service-other.log")
        #expect(other.contains("out env:none") && other.contains("out file:none"), "\(other)")
        let step = try f.read("logs/01-step.log")
        #expect(step.contains("out env:none") && step.contains("out file:none"), "\(step)")
        #expect(Harness.filesContaining(value, in: f.results).isEmpty)
    }

    @Test func hostileServiceEntriesAreRefusedNamingThem() async throws {
        let cases: [(String, String)] = [
            (#"[{"name": "host", "alias": "localhost", "command": ["true"]}]"#, #"services[0].alias: "localhost""#),
            (#"[{"name": "host", "alias": "../x", "command": ["true"]}]"#, #"services[0].alias: "../x" is not a valid alias"#),
            (#"[{"name": "host", "alias": "\#(String(repeating: "a", count: 1000))", "command": ["true"]}]"#,
             "services[0].alias: an alias is at most 63 bytes long"),
            ("[" + (1...9).map { #"{"name": "host", "alias": "s\#($0)", "command": ["true"]}"# }.joined(separator: ",") + "]",
             "services: at most 8 services per job, got 9"),
            (#"[{"name": {"rootfs": "/etc"}, "alias": "etc", "command": ["true"]}]"#, "services[0].name.rootfs: "),
            (#"[{"name": {"rootfs": "\#(Harness.user.home)"}, "alias": "home", "command": ["true"]}]"#, "services[0].name.rootfs: "),
            (#"[{"name": "evil.example/db:1", "alias": "db"}]"#, "services[0].name: \"evil.example/db:1\" is from registry evil.example"),
        ]
        for (services, expected) in cases {
            let marker = "svc-hostile-\(UUID().uuidString.prefix(6))"
            let f = try JobFixture(#"{"version": 1, "id": "svc-hostile", "services": \#(services), "steps": [{"name": "s", "run": "echo \#(marker)"}]}"#)
            let r = try await f.run()
            #expect(r.status == 2, "\(expected): \(r.stderr)")
            #expect(r.stderr.contains(expected), "\(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: f.results), "a refused job wrote results")
        }
        // agent validate says the same for the parse-time ones.
        let v = try JobFixture(#"{"version": 1, "services": [{"name": "host", "alias": "localhost", "command": ["true"]}], "steps": [{"name": "s", "run": "true"}]}"#)
        let r = try await Harness.run(["validate", v.job])
        #expect(r.status == 2)
        #expect(r.stderr.contains(#"services[0].alias: "localhost""#), "\(r.stderr)")
    }

    /// The test registry (ci/test.sh) and its images.
    static var registry: String { ProcessInfo.processInfo.environment["AGENT_TEST_REGISTRY"] ?? "127.0.0.1:1" }

    @Test func imageServicesWaitForTheirExposedPortsOrTheirHealthcheck() async throws {
        let reg = Self.registry
        let f = try JobFixture("""
        {"version": 1, "id": "svc-images", "services": [
          "\(reg)/httpd-exposed:1",
          {"name": "\(reg)/httpd-healthcheck:1", "alias": "hc", "healthcheck": {"timeout": "20s"}}
        ], "steps": [{"name": "fetch", "run": ["python3", "-c",
          "import urllib.request as u; [print(u.urlopen(x).read().decode().strip()) for x in ('http://httpd-exposed:8082/', 'http://hc:8083/')]"]}]}
        """)
        let r = try await f.run(["--policy", Harness.testPolicy("images")])
        #expect(r.status == 0, "\(r.stderr)")
        let log = try f.read("logs/01-fetch.log")
        #expect(log.components(separatedBy: "out hello-from-image").count == 3, "\(log)")
        let svc = try services(f)
        #expect(svc.map { $0["alias"] as? String } == ["httpd-exposed", "hc"])
        #expect(svc.map { $0["health"] as? String } == ["exposed ports 8082", "image healthcheck"])
        #expect(svc.map { $0["state"] as? String } == ["healthy", "healthy"])
        #expect(svc.allSatisfy { ($0["image_digest"] as? String)?.hasPrefix("sha256:") == true })

        // Two services exposing one port: refused once the images are known, before anything runs.
        let g = try JobFixture("""
        {"version": 1, "id": "svc-clash", "services": [
          {"name": "\(reg)/httpd-exposed:1", "alias": "one"}, {"name": "\(reg)/httpd-exposed:1", "alias": "two"}
        ], "steps": [{"name": "s", "run": "true"}]}
        """)
        let c = try await g.run(["--policy", Harness.testPolicy("images")])
        #expect(c.status == 2, "\(c.stderr)")
        #expect(c.stderr.contains("services[1]: port 8082 (exposed by its image) is also claimed by services[0]"), "\(c.stderr)")
        #expect(!FileManager.default.fileExists(atPath: g.results))
    }
}
