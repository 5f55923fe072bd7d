import Foundation
import Synchronization
import Testing
@testable import Sandbox

/// The child's descriptors between the clone and the sync (review 2.2.1): before it waits on
/// anything it holds only its own seven (stdio, error, status, release, sync at 0..6), so
/// concurrent starts never share a pipe and the agent's death is an EOF on the sync pipe.
@Suite struct ContainerDescriptorTests {
    /// The child's open descriptors (name → link target), once they are 0..6 or after 2 s.
    static func ownDescriptors(of pid: Int32) -> [String: String] {
        let dir = "/proc/\(pid)/fd"
        let want = (0..<8).map(String.init)
        let deadline = Date().addingTimeInterval(2)
        var names: [String] = []
        repeat {
            names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted { Int($0)! < Int($1)! }
            if names == want { break }
            usleep(1000)
        } while Date() < deadline
        var out: [String: String] = [:]
        for n in names { out[n] = (try? FileManager.default.destinationOfSymbolicLink(atPath: dir + "/" + n)) ?? "?" }
        return out
    }

    @Test func concurrentStartsHoldOnlyTheirOwnDescriptorsWhileWaiting() async throws {
        let n = 20
        let tag = UUID().uuidString.prefix(8)
        let seen = Mutex<[Int: [String: String]]>([:])
        Launcher.beforeSyncHooks.withLock { hooks in
            for i in 0..<n {
                hooks["fds-\(tag)-\(i)"] = { pid in
                    let fds = Self.ownDescriptors(of: pid)
                    seen.withLock { $0[i] = fds }
                }
            }
        }
        defer { Launcher.beforeSyncHooks.withLock { hooks in for i in 0..<n { hooks["fds-\(tag)-\(i)"] = nil } } }
        let outputs = try await withThrowingTaskGroup(of: (Int, String).self) { group in
            for i in 0..<n {
                group.addTask {
                    var cfg = RunningContainerTests.config("echo \(i); ls /proc/self/fd")
                    cfg.hostname = "fds-\(tag)-\(i)"
                    let c = try await RunningContainer.start(cfg)
                    let (out, _) = await RunningContainerTests.collect(c)
                    #expect(await c.wait().status == .exited(0))
                    return (i, out)
                }
            }
            var all: [(Int, String)] = []
            for try await r in group { all.append(r) }
            return all
        }
        #expect(outputs.count == n)
        // The command has stdio and ls's own directory descriptor, nothing else.
        for (i, out) in outputs { #expect(out == "\(i)\n0\n1\n2\n3\n", "\(i): \(out)") }
        let all = seen.withLock { $0 }
        #expect(all.count == n)
        var pipes: [String: Int] = [:]
        for (i, fds) in all {
            #expect(fds.keys.sorted() == (0..<8).map(String.init), "container \(i) holds \(fds)")
            // 0 is /dev/null; 1, 2, the control pipes 3-5 and the sync socket 6 are this
            // container's own; 7 is its plan memfd (read after the sync byte).
            #expect(fds["0"] == "/dev/null", "\(fds)")
            #expect(fds["7"]?.hasPrefix("/memfd:agent-plan") == true, "\(fds)")
            for k in 1..<7 {
                let target = fds[String(k)] ?? "?"
                #expect(target.hasPrefix(k == 6 ? "socket:" : "pipe:"), "\(i) fd \(k): \(target)")
                if let other = pipes[target] { Issue.record("containers \(other) and \(i) share \(target)") }
                pipes[target] = i
            }
        }
    }
}
