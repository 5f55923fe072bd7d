import Foundation
import Glibc
import Testing

/// As real root (`--allow-root`) the container's init changes its uid (root's 0 becomes an
/// unprivileged range), which clears PR_SET_PDEATHSIG: agent-init sets it again. A SIGKILL
/// of the agent then still takes its containers with it.
@Suite struct RootParentDeathTests {
    /// The agent built beside this test binary.
    static var agent: String {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        let exe = String(decoding: buf[0..<max(0, n)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return URL(fileURLWithPath: exe).deletingLastPathComponent().path + "/agent"
    }

    static func processes(running marker: String) -> [Int32] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { Int32($0) }.filter { pid in
            guard let raw = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            return String(decoding: raw, as: UTF8.self).replacingOccurrences(of: "\0", with: " ").contains(marker)
        }
    }

    @Test(.enabled(if: getuid() == 0, "the uid change happens only when the agent is real root"))
    func aKilledRootAgentLeavesNoContainer() async throws {
        let marker = "sleep 97.\(getpid())"
        var pid: pid_t = 0
        let argv = [Self.agent, "exec", "--allow-root", "--", "/bin/sh", "-c", marker]
        let cargv = argv.map { strdup($0) } + [nil]
        defer { cargv.forEach { free($0) } }
        #expect(posix_spawn(&pid, Self.agent, nil, nil, cargv, environ) == 0)
        var seen = false
        for _ in 0..<200 where !seen {
            seen = !Self.processes(running: marker).filter { $0 != pid }.isEmpty
            if !seen { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(seen, "the container never started")
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        var left: [Int32] = []
        for _ in 0..<100 {
            left = Self.processes(running: marker)
            if left.isEmpty { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(left.isEmpty, "left behind: \(left)")
        for p in left { kill(p, SIGKILL) }
    }
}
