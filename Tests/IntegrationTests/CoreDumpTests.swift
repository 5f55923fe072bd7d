import Foundation
import Testing

/// The agent's memory (job secrets, redaction tables) never reaches a core file or another
/// process of the same user: every command starts with RLIMIT_CORE 0 and non-dumpable.
@Suite struct CoreDumpTests {
    /// The value of `key` in /proc/<pid>/limits or status-style text.
    static func line(_ text: String, startingWith key: String) -> String? {
        text.split(separator: "\n").first { $0.hasPrefix(key) }.map(String.init)
    }

    @Test func runningAgentIsNotDumpableAndHasNoCoreLimit() async throws {
        let (p, seen) = try Harness.start(["exec", "--verbose", "--", "sleep", "30"], until: "id mapping")
        defer { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        #expect(seen.contains("id mapping"), "\(seen)")
        let pid = p.processIdentifier
        let limits = try String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)
        let core = try #require(Self.line(limits, startingWith: "Max core file size"))
        #expect(core.split(separator: " ").filter { !$0.isEmpty }.dropFirst(4).prefix(2) == ["0", "0"], "\(core)")

        // It really is the test user's agent...
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        let uid = try #require(Self.line(status, startingWith: "Uid:"))
        #expect(uid.contains("\t\(Harness.user.uid)\t"), "\(uid)")
        // ...yet its /proc files belong to root: the same user cannot read its environment
        // or memory (the kernel's rule for non-dumpable processes).
        var st = stat()
        #expect(stat("/proc/\(pid)/environ", &st) == 0)
        #expect(st.st_uid == 0)
        let u = Harness.user
        let peek = Process()
        peek.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        peek.arguments = ["--reuid=\(u.uid)", "--regid=\(u.gid)", "--clear-groups", "--", "/bin/cat", "/proc/\(pid)/environ"]
        peek.standardOutput = FileHandle.nullDevice
        peek.standardError = FileHandle.nullDevice
        try peek.run()
        peek.waitUntilExit()
        #expect(peek.terminationStatus != 0)
    }

    /// Children are unaffected where it matters: the command itself is an ordinary,
    /// dumpable process of its own (execve resets the flag), and containers still start
    /// in both id-mapping modes (the agent writes the child's maps while it is dumpable).
    @Test func containersStillStartInBothMappingModes() async throws {
        for mode in ["single", "auto"] {
            let r = try await Harness.exec(["--id-map", mode], ["/bin/sh", "-c", "grep -E '^(Uid|CapEff)' /proc/self/status | wc -l"])
            #expect(r.status == 0 && r.stdout == "2\n", "\(mode): \(r.stderr)")
        }
    }
}
