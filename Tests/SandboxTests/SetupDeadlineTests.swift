import CAgentSandbox
import Foundation
import Synchronization
import Testing
@testable import Sandbox

/// Every set-up stage runs under `setupTimeout`: past it the container (and a hung helper with
/// whatever it started) is killed and reaped, and the error names the stage.
@Suite struct SetupDeadlineTests {
    /// An executable that starts a child and hangs; `marker` is in the child's command line.
    static func hangingHelper(_ marker: String) throws -> String {
        let dir = NSTemporaryDirectory() + "sandbox-hang-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/hang"
        // Written by a shell of its own, never through a descriptor of this process: a child
        // another test forks meanwhile copies our descriptors (close-on-exec only closes them
        // at its exec), and while it held the script open for writing, exec'ing the script
        // failed with ETXTBSY ("Text file busy", seen once under load).
        let text = "#!/bin/sh\nsleep \(marker)\necho never\n"
        let argv = ["/bin/sh", "-c", "printf '%s' \"$1\" > \"$2\" && chmod 755 \"$2\"", "sh", text, path]
        var pid: pid_t = 0
        let cargs = argv.map { strdup($0) } + [nil]
        defer { cargs.forEach { free($0) } }
        #expect(posix_spawn(&pid, "/bin/sh", nil, nil, cargs, environ) == 0)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        #expect(status == 0)
        return path
    }

    static func processes(containing marker: String) -> [Int32] {
        let pids = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { Int32($0) }
        return pids.filter { pid in
            guard let d = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            return String(decoding: d.map { $0 == 0 ? 32 : $0 }, as: UTF8.self).contains(marker)
        }
    }

    @Test func hangingIDHelperTimesOutNamingTheStage() throws {
        let marker = "\(800_000 + Int.random(in: 0..<100_000))"
        let hang = try Self.hangingHelper(marker)
        let plan = IDMapPlan(method: .helpers(uids: SubordinateRange(start: 100_000, count: 65536),
                                              gids: SubordinateRange(start: 100_000, count: 65536)),
                             reported: .subordinate, initUID: 0, initGID: 0, groupsAllowed: true)
        let started = ContinuousClock.now
        #expect {
            try plan.apply(pid: getpid(), timeout: .milliseconds(300), helpers: (hang, "/bin/true"))
        } throws: { error in
            (error as? SandboxError)?.description == "sandbox setup timed out at newuidmap after 0.3 s"
        }
        #expect(ContinuousClock.now - started < .seconds(3))
        // The helper's whole process group is gone (the script and its sleep). SIGKILL of
        // the orphaned sleep completes asynchronously (its new parent reaps it): allow a
        // bounded moment for that, never a survivor.
        let gone = ContinuousClock.now + .seconds(5)
        while !Self.processes(containing: "sleep \(marker)").isEmpty && ContinuousClock.now < gone { usleep(20_000) }
        #expect(Self.processes(containing: "sleep \(marker)").isEmpty)
    }

    @Test func containerSetupPastTheDeadlineIsKilledAndReaped() async throws {
        var cfg = RunningContainerTests.config("echo never")
        cfg.hostname = "deadline-\(UUID().uuidString.prefix(8))"
        // No time at all: the wait for agent-init's ready byte or, if that byte was there
        // at once, the error-pipe read after the sync gives up.
        cfg.setupTimeout = .zero
        let child = Mutex<Int32>(0)
        Launcher.beforeSyncHooks.withLock { $0[cfg.hostname] = { pid in child.withLock { $0 = pid } } }
        defer { Launcher.beforeSyncHooks.withLock { $0[cfg.hostname] = nil } }
        await #expect {
            _ = try await RunningContainer.start(cfg)
        } throws: { error in
            let d = (error as? SandboxError)?.description
            return d == "sandbox setup timed out at container set-up after 0 s"
                || d == "sandbox setup timed out at agent-init exec after 0 s"
        }
        let pid = child.withLock { $0 }
        #expect(pid > 0)
        // Killed and reaped: not even a zombie is left.
        #expect(kill(pid, 0) == -1 && errno == ESRCH)
    }

    @Test func durationsPrintAsSeconds() {
        #expect(SandboxError.seconds(.seconds(10)) == "10")
        #expect(SandboxError.seconds(.milliseconds(250)) == "0.25")
        #expect(SandboxError.seconds(.milliseconds(1500)) == "1.5")
    }
}

extension SetupDeadlineTests {
    /// The second id-mapping helper is forked with this thread pinned to its CPU (so the two
    /// run on two CPUs at once): the pin ends with the spawn. Both helpers run; the thread's
    /// affinity is what it was before, and a failed second spawn leaves no first helper.
    @Test func helperPairRestoresTheThreadsAffinity() throws {
        var before = agent_sandbox_affinity(), after = agent_sandbox_affinity()
        #expect(agent_sandbox_get_affinity(&before) == 0)
        let (a, b) = try IDMapPlan.spawnHelpers(uid: ("/bin/true", []), gid: ("/bin/true", []))
        #expect(IDMapPlan.Helper.drain([a, b], until: .now + .seconds(10)) == nil)
        #expect(a.finish() == nil && b.finish() == nil)
        #expect(agent_sandbox_get_affinity(&after) == 0)
        #expect(withUnsafeBytes(of: &before) { Array($0) } == withUnsafeBytes(of: &after) { Array($0) })

        let marker = "\(900_000 + Int.random(in: 0..<90_000))"
        let hang = try Self.hangingHelper(marker)
        #expect(throws: SandboxError.self) {
            _ = try IDMapPlan.spawnHelpers(uid: (hang, []), gid: ("/nonexistent/newgidmap", []))
        }
        #expect(agent_sandbox_get_affinity(&after) == 0)
        #expect(withUnsafeBytes(of: &before) { Array($0) } == withUnsafeBytes(of: &after) { Array($0) })
        // The first helper was killed and reaped with its process group.
        let deadline = ContinuousClock.now + .seconds(5)
        while !Self.processes(containing: "sleep \(marker)").isEmpty && ContinuousClock.now < deadline { usleep(20_000) }
        #expect(Self.processes(containing: "sleep \(marker)").isEmpty)
    }
}
