import Foundation
import Testing

/// Helpers shared by the sandbox integration tests.
enum SandboxFixture {
    /// Options for a busybox or host-rootfs container without the seccomp filter: the
    /// policy `unconfined.json` makes that the default, so the tests see the other layers
    /// alone (tests of the filter pass no policy and get the built-in one).
    static var busybox: [String] { ["--rootfs", Harness.busyboxRootfs] + unconfined }
    static var host: [String] { ["--rootfs", "host"] + unconfined }
    static var unconfined: [String] { ["--policy", Harness.testPolicy("unconfined"), "--seccomp", "unconfined"] }

    /// A writable copy of the busybox rootfs owned by the test user, for planting symlinks.
    static func rootfsCopy() throws -> String {
        let dir = try Harness.scratch("rootfs") + "/root"
        try run("/bin/cp", ["-a", Harness.busyboxRootfs, dir])
        let u = Harness.user
        try run("/bin/chown", ["-R", "\(u.uid):\(u.gid)", dir])
        return dir
    }

    static func run(_ tool: String, _ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        try p.run()
        p.waitUntilExit()
        if p.terminationStatus != 0 { throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "\(tool) \(args) failed"]) }
    }

    /// Host processes whose command line contains `marker`.
    static func processes(containing marker: String) -> [Int32] {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.compactMap { Int32($0) } ?? []
        return pids.filter { pid in
            guard let d = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            return String(decoding: d.map { $0 == 0 ? 32 : $0 }, as: UTF8.self).contains(marker)
        }
    }
}

/// `agent exec` basics: ids, processes, descriptors, exit codes, set-up errors.
@Suite struct SandboxTests {
    /// The owner on the host of a file the command creates in a rw bind.
    static func hostOwner(_ dir: String, _ name: String) -> uid_t? {
        var st = stat()
        return stat(dir + "/" + name, &st) == 0 ? st.st_uid : nil
    }

    @Test func rootInsideIsTheAgentUserOutside() async throws {
        let dir = try Harness.scratch("ids")
        let r = try await Harness.exec(SandboxFixture.busybox + ["--verbose", "--bind", "\(dir):/w:rw"],
                                       ["sh", "-c", "id -u; id -g; touch /w/f; head -n1 /proc/self/uid_map"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map { $0.split(separator: " ").joined(separator: " ") }
        #expect(lines.first == "0")
        // The command's own map is the nested user namespace's (locked mounts): its 0 is the
        // container's 1 (the container's namespace maps no 0, so the init's /proc is host root's).
        #expect(lines.count == 3 && lines[2] == "0 1 1", "\(r.stdout)")
        #expect(Self.hostOwner(dir, "f") == Harness.user.uid)
        #expect(r.stderr.contains("id mapping: subordinate") || r.stderr.contains("id mapping: single"), "\(r.stderr)")
    }

    @Test func singleMappingToAChosenUID() async throws {
        let dir = try Harness.scratch("ids")
        let r = try await Harness.exec(SandboxFixture.busybox + ["--id-map", "single", "--user", "1000:1000", "--verbose", "--bind", "\(dir):/w:rw"],
                                       ["sh", "-c", "id -u; touch /w/f; cat /proc/self/uid_map"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.hasPrefix("1000\n"))
        #expect(r.stdout.split(separator: "\n").last?.split(separator: " ").map(String.init) == ["1000", "1000", "1"])
        #expect(Self.hostOwner(dir, "f") == Harness.user.uid)
        #expect(r.stderr.contains("id mapping: single"))
    }

    @Test func subordinateMappingGivesARange() async throws {
        let r = try await Harness.exec(SandboxFixture.busybox + ["--id-map", "subordinate", "--tmpfs", "/t", "--verbose"],
                                       ["sh", "-c", "cat /proc/self/uid_map; chown 1000:1000 /t && stat -c %u /t"])
        #expect(r.status == 0, "\(r.stderr)")
        // The helpers began as soon as the flags were parsed (ContainerReservation).
        #expect(r.stderr.contains("agent: id mapping: subordinate (begun before the policy was read)"), "\(r.stderr)")
        // Two lines, as the container's map (0 = the agent user, 1... = the subordinate range),
        // each one up in the container's namespace, which maps no id 0.
        let lines = r.stdout.split(separator: "\n").map { $0.split(separator: " ").joined(separator: " ") }
        #expect(lines.count == 3 && lines[0] == "0 1 1" && lines[1].hasPrefix("1 2 ") && lines[2] == "1000", "\(r.stdout)")
    }

    @Test func onlyContainerProcessesAreVisible() async throws {
        let r = try await Harness.exec(SandboxFixture.busybox, ["sh", "-c", "ls /proc | grep -E '^[0-9]+$'; cat /proc/1/comm; tr -d '\\000' < /proc/1/cmdline"])
        #expect(r.status == 0, "\(r.stderr)")
        // PID 1 is agent-init (named "init"); nothing of the agent's command line is there.
        #expect(r.stdout.hasSuffix("\ninit\ninit"), "\(r.stdout)")
        let pids = r.stdout.split(separator: "\n").compactMap { Int($0) }
        // init (1), sh (2), ls and grep: nothing of the host.
        #expect(pids.contains(1) && pids.count <= 4, "\(pids)")
    }

    @Test func initReapsOrphanedZombies() async throws {
        // The subshell exits at once, orphaning `sleep`, which is re-parented to PID 1. Once it
        // exits (bounded wait, no speed assumption) no zombie may remain.
        let script = """
            (sleep 3 &)
            i=0; until ps -o ppid,comm | grep -q '^ *1 sleep' || [ $i -ge 200 ]; do sleep 0.05; i=$((i+1)); done
            [ $i -lt 200 ] && echo orphan
            i=0; while ps -o stat,comm | grep -q '^[^Z]* sleep' && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
            i=0; while [ $(ps -o stat | grep -c Z) != 0 ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
            ps -o stat | grep -c Z
            """
        let r = try await Harness.exec(SandboxFixture.busybox, ["sh", "-c", script])
        #expect(r.stdout == "orphan\n0\n", "\(r.stdout) \(r.stderr)")
    }

    @Test func onlyStdioDescriptorsReachTheCommand() async throws {
        let r = try await Harness.exec(SandboxFixture.busybox, ["ls", "/proc/self/fd"])
        #expect(r.status == 0, "\(r.stderr)")
        let fds = Set(r.stdout.split(whereSeparator: { $0 == "\n" || $0 == " " }).compactMap { Int($0) })
        // 3 is the directory ls itself opened.
        #expect(fds.isSubset(of: [0, 1, 2, 3]) && fds.isSuperset(of: [0, 1, 2]), "\(fds)")
    }

    @Test func environmentHostnameAndWorkdir() async throws {
        let r = try await Harness.exec(SandboxFixture.busybox + ["--env", "FOO=bar", "--hostname", "box", "--workdir", "/tmp"],
                                       ["sh", "-c", "env | sort; hostname; pwd"], environment: ["LEAK": "1"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!r.stdout.contains("LEAK") && !r.stdout.contains("HOME="))
        #expect(r.stdout.contains("FOO=bar\n") && r.stdout.contains("PATH="))
        #expect(r.stdout.hasSuffix("box\n/tmp\n"), "\(r.stdout)")
    }

    @Test func exitCodesFollowDocker() async throws {
        #expect(try await Harness.exec(SandboxFixture.busybox, ["sh", "-c", "exit 3"]).status == 3)
        #expect(try await Harness.exec(SandboxFixture.busybox, ["sh", "-c", "kill -9 $$"]).status == 137)
        let missing = try await Harness.exec(SandboxFixture.busybox, ["no-such-command"])
        #expect(missing.status == 127)
        #expect(missing.stderr.contains("agent: sandbox setup failed at exec no-such-command: No such file or directory"))
        let notExec = try await Harness.exec(SandboxFixture.busybox, ["/etc/passwd"])
        #expect(notExec.status == 126, "\(notExec.stderr)")
        let bad = try await Harness.exec(SandboxFixture.busybox + ["--network", "moon"], ["true"])
        #expect(bad.status == 64 && bad.stderr.contains("--network must be none, host or outbound"), "\(bad.stderr)")
        let badBind = try await Harness.exec(SandboxFixture.busybox + ["--bind", "/only-source"], ["true"])
        #expect(badBind.status == 64 && badBind.stderr.contains("--bind must be SRC:DST"), "\(badBind.stderr)")
        let typo = try await Harness.run(["exec", "--rootfs", Harness.busyboxRootfs, "--typo", "--", "true"])
        #expect(typo.status == 64 && typo.stderr.contains("unknown option '--typo'"), "\(typo.stderr)")
    }

    @Test func timeoutKillsTheCommand() async throws {
        let r = try await Harness.exec(SandboxFixture.busybox + ["--timeout", "1s"], ["sleep", "60"])
        #expect(r.status == 128 + SIGTERM)
        #expect(r.stderr.contains("timed out"))
    }

    @Test func writableMountsAndReadOnlyRoot() async throws {
        let dir = try Harness.scratch("bind")
        try Harness.write("hello", to: dir + "/in")
        let r = try await Harness.exec(
            // The host rootfs is a tmpfs, so the file target /ro-in can be created in it.
            SandboxFixture.host + ["--bind", "\(dir):/workspace:rw", "--bind", "\(dir)/in:/ro-in", "--tmpfs", "/tmp:size=1m"],
            ["sh", "-c", "cat /ro-in; echo out > /workspace/out; echo t > /tmp/t && echo tmp-ok; echo x > /ro-in || true; touch /x || true"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "hellotmp-ok\n")
        #expect(r.stderr.contains("Read-only file system"))
        #expect((try? String(contentsOfFile: dir + "/out", encoding: .utf8)) == "out\n")
    }

    @Test(arguments: [
        (["--rootfs", "/nonexistent/rootfs"], "rootfs (directory /nonexistent/rootfs): No such file or directory"),
        (["--bind", "/nonexistent/src:/x"], "mount /x (bind source /nonexistent/src): No such file or directory"),
        (["--tmpfs", "/bin/sub"], "mount /bin/sub (the target path contains a symlink)"),
    ])
    func setupFailuresNameTheStage(options: [String], message: String) async throws {
        let mountsBefore = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        let marker = "marker-\(UUID().uuidString.prefix(8))"
        let clock = ContinuousClock()
        let started = clock.now
        // The host rootfs has /bin -> usr/bin, a symlink a mount target may not pass through.
        let r = try await Harness.exec(SandboxFixture.host + options, ["/bin/sleep", "30", marker])
        // Bounded, not a speed test: a failure must come back, never hang.
        #expect(clock.now - started < .seconds(60))
        #expect(r.status == 125)
        #expect(r.stderr.contains("agent: sandbox setup failed at \(message)"), "\(r.stderr)")
        #expect(SandboxFixture.processes(containing: marker).isEmpty)
        #expect(try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) == mountsBefore)
    }

    // Truly needs root: it runs the agent as the test process's own uid, and the refusal
    // under test exists only for uid 0 (CI runs the tests as root).
    @Test(.enabled(if: Harness.isRoot, "the agent is refused only when run as root"))
    func rootIsRefusedWithoutAllowRoot() async throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Harness.agentBinary)
        p.arguments = ["exec"] + SandboxFixture.unconfined + ["--", "true"]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let data = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(p.terminationStatus == 125)
        #expect(String(decoding: data, as: UTF8.self).contains("--allow-root"))
    }
}
