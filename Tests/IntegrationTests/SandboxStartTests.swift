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
