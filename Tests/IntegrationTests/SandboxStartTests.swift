import Foundation
import Testing

/// Container start-up as a whole: concurrent starts, and set-up stages under a deadline.
@Suite struct SandboxStartTests {
    @Test func twentyConcurrentExecsEachGetTheirOwnOutput() async throws {
        let results = try await withThrowingTaskGroup(of: (Int, Harness.Result).self) { group in
            for i in 0..<20 {
                group.addTask { (i, try await Harness.exec(SandboxFixture.busybox, ["sh", "-c", "echo \(i); ls /proc/self/fd | wc -l; exit \(i % 7)"])) }
            }
            var all: [(Int, Harness.Result)] = []
            for try await r in group { all.append(r) }
            return all
        }
        #expect(results.count == 20)
        for (i, r) in results {
            #expect(r.status == Int32(i % 7), "\(i): \(r.stderr)")
            // stdio and ls's own directory descriptor.
            #expect(r.stdout == "\(i)\n4\n", "\(i): \(r.stdout) \(r.stderr)")
        }
    }
}

extension SandboxStartTests {
    /// A newuidmap that hangs (through AGENT_NEWUIDMAP): the start fails at the default
    /// 10 s deadline naming the stage, and leaves no process (neither the helper's child nor
    /// the container).
    @Test func hangingNewuidmapFailsAtTheDeadline() async throws {
        let dir = try Harness.scratch("hang")
        let marker = "\(700_000 + Int.random(in: 0..<100_000))"
        try Harness.write("#!/bin/sh\nsleep \(marker)\n", to: dir + "/newuidmap", mode: 0o755)
        let started = Date()
        let r = try await Harness.exec(SandboxFixture.busybox + ["--id-map", "subordinate"], ["echo", "never"],
                                       environment: ["AGENT_NEWUIDMAP": dir + "/newuidmap"])
        let elapsed = Date().timeIntervalSince(started)
        #expect(r.status == 125, "\(r.stdout) \(r.stderr)")
        #expect(r.stderr == "agent: sandbox setup timed out at newuidmap after 10 s\n", "\(r.stderr)")
        #expect(r.stdout == "")
        #expect(elapsed >= 9.5 && elapsed < 60, "\(elapsed)")  // the deadline, and a hang guard
        #expect(SandboxFixture.processes(containing: "sleep \(marker)").isEmpty)
    }
}

extension SandboxStartTests {
    /// 300 single-mode starts one after another, stdin from /dev/null, each a new agent
    /// process: none fails to write its id maps. Before agent-init made itself dumpable at
    /// its start (and the agent waited for that), a child whose exec left it non-dumpable
    /// had root-owned /proc files, and 1-6 % of these starts failed with "sandbox setup
    /// failed at setgroups: Permission denied".
    @Test func threeHundredStartsNeverFailTheirIdMaps() throws {
        let u = Harness.user
        let prefix = Harness.isRoot ? "setpriv --reuid=\(u.uid) --regid=\(u.gid) --clear-groups -- env HOME=\(u.home) " : ""
        let script = """
        i=0; fails=0
        while [ $i -lt 300 ]; do
          \(prefix)\(Harness.agentBinary) exec --id-map single --rootfs \(Harness.busyboxRootfs) -- /bin/true </dev/null || fails=$((fails+1))
          i=$((i+1))
        done
        echo "fails=$fails"
        """
        let out = try BuildTests.output(script)
        #expect(out.hasSuffix("fails=0\n"), "\(out.suffix(2000))")
        #expect(!out.contains("setgroups"), "\(out.suffix(2000))")
    }
}

extension SandboxStartTests {
    /// `agent exec` spawns its container's child and starts the id mapping before it reads
    /// the policy (ContainerReservation). Run under a child subreaper (which inherits every
    /// orphan): after an exec the policy refuses (exit 125), one whose command runs, and one
    /// with a usage error (exit 64), nothing of the agent's is left alive a second later.
    @Test(arguments: [
        (["--cap-add", "SYS_ADMIN"], Int32(125)), ([], Int32(0)), (["--workdir", "relative"], Int32(64)),
    ])
    func reservedStartsLeaveNoProcess(flags: [String], status: Int32) throws {
        let u = Harness.user
        var argv = [Harness.agentBinary, "exec", "--rootfs", Harness.busyboxRootfs] + flags + ["--", "/bin/true"]
        if Harness.isRoot {
            argv = ["setpriv", "--reuid=\(u.uid)", "--regid=\(u.gid)", "--clear-groups", "--", "env", "HOME=\(u.home)"] + argv
        }
        // A subreaper: forks the agent, waits for it, then reaps every orphan for up to 1 s;
        // prints the agent's status and LEFT if anything is still alive then.
        let script = #"""
        import ctypes, os, sys, time
        ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        pid = os.fork()
        if pid == 0:
            os.execvp(sys.argv[1], sys.argv[1:])
        _, st = os.waitpid(pid, 0)
        print("status", os.waitstatus_to_exitcode(st))
        deadline = time.time() + 1
        while True:
            try:
                p, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                print("CLEAN"); break
            if p == 0:
                if time.time() > deadline:
                    print("LEFT"); break
                time.sleep(0.01)
        """#
        let quoted = argv.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let out = try BuildTests.output("python3 -c '\(script.replacingOccurrences(of: "'", with: "'\\''"))' \(quoted) 2>/dev/null")
        #expect(out.contains("status \(status)\n"), "\(out)")
        #expect(out.hasSuffix("CLEAN\n"), "\(out)")
    }
}
