import Foundation
import Testing
@testable import Sandbox

/// A terminate request is never lost, whenever it comes: during the start (before the init
/// has its signalfd, before the command exists, before its execve) or just after it. Each
/// container runs `sleep 900` with a 300 s grace period: a lost SIGTERM would end it with the
/// SIGKILL after the grace (or `sleep` would run to its end), so the status alone proves the
/// SIGTERM arrived; the time bound is only a hang guard (a saturated machine stalled whole
/// test processes for 60 s: slow, not wrong).
@Suite struct CancelRaceTests {
    static func config() -> ContainerConfiguration {
        var c = ContainerConfiguration(command: ["/bin/sleep", "900"])
        c.seccomp = .unconfined
        c.allowRoot = true
        c.killGracePeriod = .seconds(300)
        return c
    }

    /// Cancels the task that starts and waits at 0, 1, 2, ... ms after it began: the early
    /// ones land while the container is being set up, the later ones once `sleep` runs.
    @Test func cancelAtManyMomentsAfterStartEndsEveryContainerPromptly() async throws {
        for k in 0..<32 {
            let started = ContinuousClock.now
            let task = Task { () throws -> ContainerResult in
                let c = try await RunningContainer.start(Self.config())
                return await c.wait()
            }
            // Half of the runs spread over the first 16 ms, the rest a yield or less apart.
            if k % 2 == 0 { try await Task.sleep(for: .milliseconds(k / 2)) } else { await Task.yield() }
            task.cancel()
            let r = try await task.value
            let took = ContinuousClock.now - started
            #expect(r.status == .signaled(SIGTERM), "run \(k): \(r.status) after \(took)")
            #expect(took < .seconds(290), "run \(k): \(took)")
        }
    }

    /// The same through `terminate` right after `start` returns, with no await in between.
    @Test func terminateRightAfterStartIsNeverLost() async throws {
        for k in 0..<12 {
            let started = ContinuousClock.now
            let c = try await RunningContainer.start(Self.config())
            c.terminate(grace: .seconds(300))
            let r = await c.wait()
            let took = ContinuousClock.now - started
            #expect(r.status == .signaled(SIGTERM), "run \(k): \(r.status) after \(took)")
            #expect(took < .seconds(290), "run \(k): \(took)")
        }
    }
}

/// `RunningContainer.runOnThisThread`: the one-shot start `agent exec` uses (no thread, no task).
@Suite struct RunOnThisThreadTests {
    @Test func runsTheContainerToItsEndOnTheCallingThread() throws {
        var cfg = RunningContainerTests.config("exit 7")
        cfg.output = .inherit
        var started: Int32 = 0
        let r = try RunningContainer.runOnThisThread(cfg, hostNetworkAllowed: { true }) { c in started = c.pid }
        #expect(started > 0)
        #expect(r.status == .exited(7))
        // The init was reaped by this thread: no process is left.
        #expect(kill(started, 0) == -1 && errno == ESRCH)
    }

    @Test func timeoutAndSetupFailuresAsWithStart() throws {
        var cfg = RunningContainerTests.config("sleep 300")
        cfg.output = .inherit
        cfg.timeout = .milliseconds(100)
        let r = try RunningContainer.runOnThisThread(cfg, hostNetworkAllowed: { true }) { _ in }
        #expect(r.timedOut && r.status == .signaled(SIGTERM))
        var bad = RunningContainerTests.config("true")
        bad.output = .inherit
        bad.workingDirectory = "relative"
        #expect(throws: SandboxError.self) { try RunningContainer.runOnThisThread(bad, hostNetworkAllowed: { true }) { _ in } }
        // Captured output needs a consumer, which a blocking caller cannot be.
        #expect(throws: SandboxError.self) {
            try RunningContainer.runOnThisThread(RunningContainerTests.config("true"), hostNetworkAllowed: { true }) { _ in }
        }
    }
}
