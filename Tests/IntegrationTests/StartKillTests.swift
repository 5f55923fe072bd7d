import Foundation
import Testing

/// kill -9 of the agent at random moments while it starts containers: whatever stage the
/// start was in (clone, id maps, set-up, the command running), no process of the container
/// and no mount outlives the agent.
@Suite(.serialized) struct StartKillTests {
    @Test func killNineDuring200StartsLeavesNoProcessAndNoMount() async throws {
        let marker = "startkill-\(UUID().uuidString.prefix(8))"
        let mountsBefore = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        var rng = SystemRandomNumberGenerator()
        for round in 0..<200 {
            // Alternate the id mappings: auto runs the setuid helpers, single does not.
            let idMap = round % 2 == 0 ? "auto" : "single"
            let p = Harness.process(["exec", "--id-map", idMap, "--", "/bin/sleep", "30", marker])
            p.standardInput = FileHandle.nullDevice
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            try await Task.sleep(for: .microseconds(Int.random(in: 0...25_000, using: &rng)))
            kill(p.processIdentifier, SIGKILL)
            await Harness.waitForExit(p)
        }
        // PR_SET_PDEATHSIG (or EOF on the sync pipe before it) ends every init; the kernel
        // needs a moment to deliver and reap. Bounded: a survivor is a failure.
        let deadline = ContinuousClock.now + .seconds(10)
        while !SandboxFixture.processes(containing: marker).isEmpty && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(SandboxFixture.processes(containing: marker).isEmpty)
        #expect(try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) == mountsBefore)
    }
}
