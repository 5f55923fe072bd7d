import Foundation
import Testing
@testable import Sandbox

/// A terminate request is never lost, whenever it comes: during the start (before the init
/// has its signalfd, before the command exists, before its execve) or just after it. Each
/// container runs `sleep 30` with a 5 s grace period, so a lost SIGTERM would show as a
/// SIGKILL after 5 s (or as `sleep` running to its end), never as a prompt SIGTERM.
@Suite struct CancelRaceTests {
    static func config() -> ContainerConfiguration {
        var c = ContainerConfiguration(command: ["/bin/sleep", "30"])
        c.seccomp = .unconfined
        c.allowRoot = true
        c.killGracePeriod = .seconds(5)
        return c
    }

    /// Cancels the task that starts and waits at 0, 1, 2, ... ms after it began: the early
    /// ones land while the container is being set up, the later ones once `sleep` runs.
    @Test func cancelAtManyMomentsAfterStartEndsEveryContainerPromptly() async throws {
        for k in 0..<48 {
            let started = ContinuousClock.now
            let task = Task { () throws -> ContainerResult in
                let c = try await RunningContainer.start(Self.config())
                return await c.wait()
            }
            // Half of the runs spread over the first 24 ms, the rest a yield or less apart.
            if k % 2 == 0 { try await Task.sleep(for: .milliseconds(k / 2)) } else { await Task.yield() }
            task.cancel()
            let r = try await task.value
            let took = ContinuousClock.now - started
            #expect(r.status == .signaled(SIGTERM), "run \(k): \(r.status) after \(took)")
            // Far below the 5 s grace (a lost SIGTERM) and the 30 s of sleep; not a speed test.
            #expect(took < .seconds(4), "run \(k): \(took)")
        }
    }

    /// The same through `terminate` right after `start` returns, with no await in between.
    @Test func terminateRightAfterStartIsNeverLost() async throws {
        for k in 0..<32 {
            let started = ContinuousClock.now
            let c = try await RunningContainer.start(Self.config())
            c.terminate(grace: .seconds(5))
            let r = await c.wait()
            let took = ContinuousClock.now - started
            #expect(r.status == .signaled(SIGTERM), "run \(k): \(r.status) after \(took)")
            #expect(took < .seconds(4), "run \(k): \(took)")
        }
    }
}
