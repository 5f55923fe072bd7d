import Foundation
import Testing

/// No copy of the agent in a container: PID 1 is agent-init, a small static program the agent
/// execs right after the clone, and no process of the container maps the agent's binary.
@Suite struct SandboxInitTests {
    /// The pids whose parent is `pid` (every thread's children).
    static func children(of pid: Int32) -> [Int32] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.flatMap { tid -> [Int32] in
            let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/children", encoding: .utf8)) ?? ""
            return text.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
    }

    static func descendants(of pid: Int32) -> [Int32] {
        let direct = children(of: pid)
        return direct + direct.flatMap { descendants(of: $0) }
    }

    /// (st_dev, st_ino) of a path (following links, so /proc/<pid>/exe gives the executable).
    static func identity(_ path: String) -> (UInt64, UInt64)? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return (UInt64(st.st_dev), UInt64(st.st_ino))
    }

    static func readlink(_ path: String) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: path)
    }

    /// Private_Clean + Private_Dirty of /proc/<pid>/smaps_rollup, in KiB.
    static func privateKiB(_ pid: Int32) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/smaps_rollup", encoding: .utf8) else { return nil }
        var total = 0, seen = 0
        for line in text.split(separator: "\n") where line.hasPrefix("Private_Clean:") || line.hasPrefix("Private_Dirty:") {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            if f.count >= 2, let kb = Int(f[1]) { total += kb; seen += 1 }
        }
        return seen == 2 ? total : nil
    }

    /// Whether any mapping of `pid` is the file `id` (by inode, through map_files, so the
    /// path the container sees does not matter) or names `path`.
    static func maps(_ pid: Int32, file id: (UInt64, UInt64), path: String) -> Bool {
        let maps = (try? String(contentsOfFile: "/proc/\(pid)/maps", encoding: .utf8)) ?? ""
        if maps.split(separator: "\n").contains(where: { $0.hasSuffix(" " + path) }) { return true }
        let dir = "/proc/\(pid)/map_files"
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
            if let m = identity(dir + "/" + entry), m == id { return true }
        }
        return false
    }

    // Reading another user's /proc/<pid>/{exe,map_files} needs root (CI runs as root).
    @Test(.enabled(if: Harness.isRoot, "reading another user's /proc/PID/exe and map_files needs root"))
    func pid1IsAgentInitAndMapsNothingOfTheAgent() async throws {
        let agentPath = Harness.agentBinary
        let agentID = try #require(Self.identity(agentPath))
        let marker = "init-\(UUID().uuidString.prefix(8))"
        let p = Harness.process(["exec"] + SandboxFixture.busybox + ["--", "sh", "-c", "sleep 30; : \(marker)"])
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        try p.run()
        defer { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        // setpriv execs the agent: its pid is the agent's. The init is its child (the one that
        // runs agent-init: the id-mapping helpers are the agent's children for a moment too);
        // the shell the init's, and `sleep` the shell's.
        var tree: [Int32] = []
        var initPID: Int32 = 0
        let up = await SandboxEscapeTests.eventually {
            guard let i = Self.children(of: p.processIdentifier).first(where: {
                Self.readlink("/proc/\($0)/exe")?.hasSuffix("/agent-init") == true
            }) else { return false }
            initPID = i
            tree = [i] + Self.descendants(of: i)
            return tree.count >= 3
        }
        try #require(up, "container processes: \(tree)")

        let initExe = Self.readlink("/proc/\(initPID)/exe") ?? ""
        #expect(initExe.hasSuffix("/agent-init"), "\(initExe)")
        #expect(initExe != agentPath)
        #expect(!Self.maps(initPID, file: agentID, path: agentPath), "PID 1 maps the agent")
        let maps = (try? String(contentsOfFile: "/proc/\(initPID)/maps", encoding: .utf8)) ?? ""
        #expect(!maps.contains("libswift") && !maps.contains(".so"), "PID 1 maps shared libraries:\n\(maps)")
        let kib = try #require(Self.privateKiB(initPID))
        #expect(kib < 512, "PID 1 has \(kib) KiB of private memory")

        for pid in tree {
            let exe = Self.readlink("/proc/\(pid)/exe") ?? ""
            #expect(Self.identity("/proc/\(pid)/exe").map { $0 != agentID } ?? false, "\(pid) runs the agent: \(exe)")
            #expect(!Self.maps(pid, file: agentID, path: agentPath), "\(pid) (\(exe)) maps the agent")
        }
        // The command's processes run the command (busybox's sh and sleep), not agent-init.
        for pid in tree where pid != initPID {
            let exe = Self.readlink("/proc/\(pid)/exe") ?? ""
            #expect(exe.hasSuffix("/busybox") || exe.hasSuffix("/sh") || exe.hasSuffix("/sleep"), "\(pid): \(exe)")
        }
    }

    /// Without its agent-init beside it the agent refuses to start a container, naming the path.
    @Test func missingAgentInitIsAClearError() async throws {
        let dir = try Harness.scratch("noinit")
        let copy = dir + "/agent"
        // The copy is written by a `cp` process, not by this one: a write descriptor open here
        // would be inherited by a container another test forks at that moment, and exec of the
        // copy would then fail with ETXTBSY until that child execs.
        let cp = Process()
        cp.executableURL = URL(fileURLWithPath: "/bin/cp")
        cp.arguments = [Harness.agentBinary, copy]
        try cp.run()
        await Harness.waitForExit(cp)
        #expect(cp.terminationStatus == 0)
        chmod(copy, 0o755)
        let p = Process()
        if Harness.isRoot {
            let u = Harness.user
            p.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            p.arguments = ["--reuid=\(u.uid)", "--regid=\(u.gid)", "--clear-groups", "--", copy, "exec"]
                + SandboxFixture.busybox + ["--", "true"]
        } else {
            p.executableURL = URL(fileURLWithPath: copy)
            p.arguments = ["exec"] + SandboxFixture.busybox + ["--", "true"]
        }
        p.environment = Harness.baseEnvironment()
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let stderr = String(decoding: await Harness.readToEnd(err.fileHandleForReading), as: UTF8.self)
        await Harness.waitForExit(p)
        #expect(p.terminationStatus == 125, "\(stderr)")
        #expect(stderr.contains("agent-init") && stderr.contains(dir + "/agent-init"), "\(stderr)")
    }
}
