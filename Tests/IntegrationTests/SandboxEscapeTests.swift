import Foundation
import Testing

/// Known container-escape classes, one test each, plus the agent dying under the container.
@Suite struct SandboxEscapeTests {
    static func sha256(_ path: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        p.arguments = [path]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let d = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: d, as: UTF8.self).split(separator: " ").first.map(String.init) ?? ""
    }

    /// Polls (bounded) until `condition` holds; not a speed assertion.
    static func eventually(_ limit: Duration = .seconds(20), _ condition: () -> Bool) async -> Bool {
        let clock = ContinuousClock(), end = clock.now + limit
        while clock.now < end {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return condition()
    }

    /// CVE-2019-5736 class: the container's PID 1 (agent-init, exec'd from a descriptor the
    /// agent holds) must not be reachable through /proc/1/exe or /proc/1/fd/N (nor
    /// /proc/self/exe rewrite anything of the host). (Nor list /proc/1/fd: see below.)
    @Test func procExeCannotModifyTheAgentBinary() async throws {
        let before = try Self.sha256(Harness.agentBinary)
        let script = """
            import os, errno
            for path, flags in [("/proc/1/exe", os.O_WRONLY), ("/proc/1/exe", os.O_RDONLY), ("/proc/self/exe", os.O_WRONLY),
                                ("/proc/1/environ", os.O_RDONLY), ("/proc/1/mem", os.O_RDONLY), ("/proc/1/maps", os.O_RDONLY)]:
                try:
                    fd = os.open(path, flags); os.write(fd, b"pwned") if flags else None; print(path, "opened")
                except OSError as e:
                    print(path, errno.errorcode[e.errno])
            try:
                names = os.listdir("/proc/1/fd")
            except OSError as e:
                names = []
            opened = []
            for n in names:
                try:
                    os.close(os.open("/proc/1/fd/" + n, os.O_RDONLY)); opened.append(n)
                except OSError as e:
                    pass
            print("fd", "opened" if opened else "refused")
            """
        let r = try await Harness.exec(SandboxFixture.host, ["/usr/bin/python3", "-c", script])
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 7, "\(r.stdout) \(r.stderr)")
        #expect(lines.allSatisfy { !$0.hasSuffix("opened") && !$0.hasSuffix("listed") }, "\(lines)")
        #expect(try Self.sha256(Harness.agentBinary) == before)
    }

    /// The init's descriptors, environment and maps are out of reach for container root with
    /// Docker's default capabilities (CAP_DAC_OVERRIDE among them), in both id mappings: the
    /// init is non-dumpable and its /proc entries belong to host root (the container's user
    /// namespace maps no id 0), an owner no process of the container is or may override. The
    /// init stays visible (comm), and the command's own /proc/self/fd is listable as usual.
    @Test(arguments: ["single", "subordinate"]) func initDescriptorsAreNotListable(idMap: String) async throws {
        let script = """
            id -u; grep CapEff /proc/self/status
            for f in fd fdinfo; do ls -l /proc/1/$f >/dev/null 2>&1 && echo "$f listed" || echo "$f refused"; done
            for f in environ maps mem auxv; do cat /proc/1/$f >/dev/null 2>&1 && echo "$f read" || echo "$f refused"; done
            readlink /proc/1/fd/0 >/dev/null 2>&1 && echo "fd/0 read" || echo "fd/0 refused"
            stat -c 'owner %u' /proc/1/fd
            ls /proc/self/fd >/dev/null && echo "own fds listed"
            cat /proc/1/comm
            """
        let r = try await Harness.exec(["--rootfs", Harness.busyboxRootfs, "--id-map", idMap], ["sh", "-c", script])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 12, "\(r.stdout)")
        guard lines.count == 12 else { return }
        #expect(lines[0] == "0")
        // Root with CAP_DAC_OVERRIDE (bit 1) in its own namespace: the refusals below are not
        // for want of a capability.
        let eff = UInt64(lines[1].split(separator: "\t").last ?? "", radix: 16) ?? 0
        #expect(eff & 0b10 != 0, "\(lines[1])")
        #expect(Array(lines[2...8]) == ["fd refused", "fdinfo refused", "environ refused", "maps refused", "mem refused",
                                       "auxv refused", "fd/0 refused"], "\(lines)")
        // Host root, which no namespace of the container maps (the overflow uid).
        #expect(lines[9] == "owner 65534", "\(lines[9])")
        #expect(lines[10] == "own fds listed" && lines[11] == "init", "\(lines)")
    }

    /// CVE-2024-21626 class: no working directory or descriptor leads outside the container.
    @Test func workdirCannotLeaveTheContainer() async throws {
        let up = try await Harness.exec(SandboxFixture.busybox + ["--workdir", "/../../.."], ["sh", "-c", "pwd; cd ..; ls"])
        #expect(up.status == 0, "\(up.stderr)")
        #expect(up.stdout.hasPrefix("/\n") && up.stdout.contains("busybox") == false && up.stdout.contains("bin"), "\(up.stdout)")
        for fd in 3...9 {
            let r = try await Harness.exec(SandboxFixture.busybox + ["--workdir", "/proc/self/fd/\(fd)"], ["pwd"])
            #expect(r.status == 125 && r.stderr.contains("failed at chdir"), "fd \(fd): \(r.stdout) \(r.stderr)")
        }
    }

    /// CVE-2025-31133 class: a /dev/null symlink planted in the rootfs is not used for masks,
    /// and a /dev symlink cannot redirect the /dev mount.
    @Test func plantedDevNullOrDevSymlinkIsNotFollowed() async throws {
        let dir = try Harness.scratch("devnull")
        try Harness.write("keep", to: dir + "/victim")
        let root = try SandboxFixture.rootfsCopy()
        try FileManager.default.createSymbolicLink(atPath: root + "/dev/null", withDestinationPath: dir + "/victim")
        let r = try await Harness.exec(["--rootfs", root] + SandboxFixture.unconfined,
                                       ["sh", "-c", "echo pwned > /dev/null; stat -c %t:%T /dev/null /proc/keys"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "1:3\n1:3\n")
        #expect(try String(contentsOfFile: dir + "/victim", encoding: .utf8) == "keep")

        let root2 = try SandboxFixture.rootfsCopy()
        try FileManager.default.removeItem(atPath: root2 + "/dev")
        try FileManager.default.createSymbolicLink(atPath: root2 + "/dev", withDestinationPath: dir)
        let r2 = try await Harness.exec(["--rootfs", root2] + SandboxFixture.unconfined, ["true"])
        #expect(r2.status == 125)
        #expect(r2.stderr.contains("failed at mount /dev"), "\(r2.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["victim"])
    }

    /// A rootfs symlink to a host path cannot redirect a bind mount onto the host.
    @Test func rootfsSymlinkCannotRedirectABind() async throws {
        let host = try Harness.scratch("redirect")
        let src = try Harness.scratch("src")
        let root = try SandboxFixture.rootfsCopy()
        try FileManager.default.createSymbolicLink(atPath: root + "/mnt", withDestinationPath: host)
        let r = try await Harness.exec(["--rootfs", root] + SandboxFixture.unconfined + ["--bind", "\(src):/mnt/x"], ["true"])
        #expect(r.status == 125)
        #expect(r.stderr.contains("failed at mount /mnt/x (the target path contains a symlink)"), "\(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: host).isEmpty)
    }

    /// CVE-2021-30465 class: a job plants a symlink in a volume; a later container that
    /// mounts below that path must not follow it out of its root.
    @Test func symlinkSwappedIntoAMountTargetDoesNotEscape() async throws {
        let vol = try Harness.scratch("vol")
        let escape = "/tmp/agent-escape-\(UUID().uuidString.prefix(8))"
        let plant = try await Harness.exec(SandboxFixture.busybox + ["--bind", "\(vol):/workspace:rw"],
                                           ["sh", "-c", "ln -s / /workspace/link && ln -s ../../../../../../.. /workspace/rel"])
        #expect(plant.status == 0, "\(plant.stderr)")
        for link in ["link", "rel"] {
            let r = try await Harness.exec(SandboxFixture.busybox + ["--bind", "\(vol):/workspace:rw", "--tmpfs", "/workspace/\(link)\(escape)"], ["true"])
            #expect(r.status == 125, "\(r.stdout)")
            #expect(r.stderr.contains("the target path contains a symlink"), "\(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: escape))
        }
    }

    /// Killing the agent with SIGKILL takes the whole container with it.
    @Test func sigkillOfTheAgentLeavesNoContainerProcess() async throws {
        let marker = "sigkill-\(UUID().uuidString.prefix(8))"
        let p = Harness.process(["exec"] + SandboxFixture.busybox + ["--", "sh", "-c", "sleep 300 & sleep 300; : \(marker)"])
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let running = await Self.eventually {
            SandboxFixture.processes(containing: marker).count >= 2  // agent and sh (the init is agent-init: its command line is `init`)
        }
        #expect(running)
        // Root inside, but the host sees the container's shell under the agent's uid.
        let shell = SandboxFixture.processes(containing: marker).filter { $0 != p.processIdentifier }
        #expect(!shell.isEmpty)
        for pid in shell {
            let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
            let uids = status.split(separator: "\n").first { $0.hasPrefix("Uid:") }?.split(separator: "\t").dropFirst().map(String.init)
            #expect(uids == Array(repeating: "\(Harness.user.uid)", count: 4), "\(pid): \(uids ?? [])")
        }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        let gone = await Self.eventually { SandboxFixture.processes(containing: marker).isEmpty }
        #expect(gone, "left behind: \(SandboxFixture.processes(containing: marker))")
        // The sleeps do not carry the marker: look for sleep 300 children of a dead init.
        let orphans = await Self.eventually {
            SandboxFixture.processes(containing: "sleep 300").allSatisfy { pid in
                (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8))?.contains("Uid:\t\(Harness.user.uid)") != true
            }
        }
        #expect(orphans)
    }
}
