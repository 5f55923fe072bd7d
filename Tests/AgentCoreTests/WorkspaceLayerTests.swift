import Foundation
import Testing
@testable import AgentCore

/// The stale-layer sweep: layers in use are locked and kept, layers whose owner is gone are
/// removed, and a sweep running while another job creates its layer never takes it.
@Suite struct WorkspaceLayerTests {
    @Test func aLiveLayerIsKeptAndAnAbandonedOneRemoved() async throws {
        let t = try TempState()
        var live: WorkspaceLayer? = try WorkspaceLayer(stateDirectory: t.state.root, jobID: "live", source: nil)
        let abandoned = try WorkspaceLayer(stateDirectory: t.state.root, jobID: "gone", source: nil).root
        // The second layer's object is gone: its flock went with its descriptor.
        #expect(await Self.sweepUntilRemoved(t.state.root) == [abandoned])
        let path = try #require(live?.root)
        #expect(FileManager.default.fileExists(atPath: path + "/upper"))
        live = nil
        #expect(await Self.sweepUntilRemoved(t.state.root) == [path])
    }

    /// Sweeps until a sweep removes something, for at most 20 s. A flock belongs to the open
    /// file description, so a child that another test of this process forks (a container's
    /// clone, an id helper's spawn) holds the lock too until its exec closes the descriptor
    /// (O_CLOEXEC). On a loaded machine that window once outlasted a single sweep; the layer
    /// is then rightly kept and taken by a later sweep (in the agent, the next job's). The
    /// caller checks that the sweep took exactly the abandoned layer and never the live one.
    static func sweepUntilRemoved(_ state: String) async -> [String] {
        let deadline = ContinuousClock.now + .seconds(20)
        while true {
            let removed = await WorkspaceLayer.removeStale(stateDirectory: state)
            if !removed.isEmpty || ContinuousClock.now > deadline { return removed }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    @Test func aSweepNeverTakesALayerBeingCreated() async throws {
        let t = try TempState()
        let root = t.state.root
        let creator = Task.detached {
            var failures: [String] = []
            for i in 0..<1000 {
                do {
                    let layer = try WorkspaceLayer(stateDirectory: root, jobID: "j\(i)", source: nil)
                    if !FileManager.default.fileExists(atPath: layer.root + "/upper") { failures.append("\(i): upper vanished") }
                    await layer.remove()
                } catch {
                    failures.append("\(i): \(error)")
                }
            }
            return failures
        }
        let sweeper = Task.detached {
            var removed: [String] = []
            // A sweep that finds nothing never suspends: without the sleep this loop would hold
            // one of the cooperative pool's threads (as many as cores) for the whole test and
            // starve whatever else needs one (Foundation's Process delivers exits there).
            while !Task.isCancelled {
                removed += await WorkspaceLayer.removeStale(stateDirectory: root)
                try? await Task.sleep(for: .milliseconds(1))
            }
            return removed
        }
        let failures = await creator.value
        sweeper.cancel()
        #expect(failures.isEmpty)
        #expect(await sweeper.value.isEmpty, "the sweep removed a layer that was in use")
    }
}
