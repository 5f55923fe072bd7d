import Foundation
import Testing

/// What a container may not do or see. Real kernel, real errnos (printed by python3 from
/// the host rootfs, which has the ctypes to call syscalls that have no CLI tool).
@Suite struct SandboxSecurityTests {
    /// Tries each forbidden operation and prints `name ERRNO` (or `name ok`).
    static let forbiddenScript = #"""
    import ctypes, errno, os, platform, stat
    libc = ctypes.CDLL(None, use_errno=True)
    arm = platform.machine() == "aarch64"
    NR_keyctl, NR_bpf = (219, 280) if arm else (250, 321)
    def check(name, fn):
        ctypes.set_errno(0)
        try:
            rc = fn()
            e = ctypes.get_errno() if rc == -1 else 0
        except OSError as ex:
            e = ex.errno
        print(name, errno.errorcode.get(e, "ok"))
    def write(path):
        with open(path, "w") as f: f.write("x")
        return 0
    check("mount", lambda: libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))
    check("umount", lambda: libc.umount2(b"/proc", 0))
    check("unshare-user", lambda: libc.unshare(0x10000000))
    check("setns", lambda: libc.setns(os.open("/proc/self/ns/mnt", os.O_RDONLY), 0))
    check("keyctl", lambda: libc.syscall(NR_keyctl, 0, -3, 0))
    check("bpf", lambda: libc.syscall(NR_bpf, 0, None, 0))
    check("ptrace-init", lambda: libc.ptrace(16, 1, None, None))
    check("reboot", lambda: libc.reboot(0))
    check("init_module", lambda: libc.init_module(None, 0, b""))
    check("swapon", lambda: libc.swapon(b"/tmp", 0))
    check("mknod-char", lambda: os.mknod("/tmp/null2", 0o600 | stat.S_IFCHR, os.makedev(1, 3)))
    check("proc-sys-hostname", lambda: write("/proc/sys/kernel/hostname"))
    check("rootfs-write", lambda: write("/new-file"))
    """#

    static func forbidden(_ options: [String]) async throws -> [String: String] {
        let r = try await Harness.exec(options + ["--rootfs", "host", "--tmpfs", "/tmp"], ["/usr/bin/python3", "-c", forbiddenScript])
        #expect(r.status == 0, "\(r.stderr)")
        var out: [String: String] = [:]
        for line in r.stdout.split(separator: "\n") {
            let p = line.split(separator: " ")
            if p.count == 2 { out[String(p[0])] = String(p[1]) }
        }
        return out
    }

    @Test func forbiddenOperationsFailWithoutSeccomp() async throws {
        // Capabilities and the user namespace alone already refuse these.
        let got = try await Self.forbidden(SandboxFixture.unconfined)
        let expected = [
            "mount": "EPERM", "umount": "EPERM", "setns": "EPERM", "ptrace-init": "EPERM", "reboot": "EPERM",
            "swapon": "EPERM", "mknod-char": "EPERM",
            "proc-sys-hostname": "EROFS", "rootfs-write": "EROFS",
        ]
        for (name, errno) in expected { #expect(got[name] == errno, "\(name): \(got[name] ?? "missing")") }
        // ENOSYS on kernels built without module support.
        #expect(got["init_module"] == "EPERM" || got["init_module"] == "ENOSYS", "\(got["init_module"] ?? "missing")")
    }

    @Test func forbiddenOperationsFailWithTheDefaultProfile() async throws {
        let got = try await Self.forbidden([])
        for name in ["mount", "umount", "unshare-user", "setns", "keyctl", "bpf", "ptrace-init", "reboot",
                     "init_module", "swapon", "mknod-char"] {
            #expect(got[name] == "EPERM", "\(name): \(got[name] ?? "missing")")
        }
        #expect(got["proc-sys-hostname"] == "EROFS")
        #expect(got["rootfs-write"] == "EROFS")
    }

    @Test func dockerProfileBlocksUnshareAndRunsPrograms() async throws {
        // Docker's profile as the policy's, which exec applies by default.
        let opts = ["--rootfs", "host", "--tmpfs", "/tmp", "--policy", Harness.testPolicy("docker-seccomp")]
        let unshare = try await Harness.exec(opts, ["/usr/bin/unshare", "-U", "true"])
        #expect(unshare.status != 0)
        let ok = try await Harness.exec(opts, ["/bin/sh", "-c",
            "ls / >/dev/null && echo 'int main(void){return 0;}' > /tmp/a.c && { ! command -v cc >/dev/null || cc -o /tmp/a /tmp/a.c && /tmp/a; } && echo fine"])
        #expect(ok.status == 0 && ok.stdout == "fine\n", "\(ok.stderr)")
    }

    static func status(_ options: [String]) async throws -> [String: String] {
        let r = try await Harness.exec(options, ["cat", "/proc/self/status"])
        #expect(r.status == 0, "\(r.stderr)")
        var out: [String: String] = [:]
        for line in r.stdout.split(separator: "\n") {
            let p = line.split(separator: ":", maxSplits: 1)
            if p.count == 2 { out[String(p[0])] = p[1].trimmingCharacters(in: .whitespaces) }
        }
        return out
    }

    @Test func capabilitiesAndNoNewPrivs() async throws {
        let s = try await Self.status(SandboxFixture.busybox)
        #expect(s["CapEff"] == "00000000a80425fb")
        #expect(s["CapBnd"] == "00000000a80425fb")
        #expect(s["CapPrm"] == "00000000a80425fb")
        #expect(s["CapInh"] == "0000000000000000" && s["CapAmb"] == "0000000000000000")
        #expect(s["NoNewPrivs"] == "1")
        let none = try await Self.status(SandboxFixture.busybox + ["--cap-drop", "ALL"])
        #expect(none["CapEff"] == "0000000000000000" && none["CapBnd"] == "0000000000000000")
        // A non-root uid keeps the bounding set but, as Linux does, no effective capabilities.
        let user = try await Self.status(SandboxFixture.busybox + ["--user", "1000:1000", "--id-map", "subordinate"])
        #expect(user["CapEff"] == "0000000000000000" && user["CapBnd"] == "00000000a80425fb")
    }

    @Test func seccompFilterIsInstalled() async throws {
        let s = try await Self.status(["--rootfs", Harness.busyboxRootfs])
        #expect(s["Seccomp"] == "2")
        #expect(s["NoNewPrivs"] == "1")
        #expect(s["CapEff"] == "00000000a80425fb" && s["CapBnd"] == "00000000a80425fb")
    }

    @Test func kernelFilesAreMaskedOrReadOnly() async throws {
        let script = """
            for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug; do
              [ -e $f ] && echo "$f $(stat -c %t:%T $f) $(wc -c < $f)"
            done
            ls -A /proc/acpi /sys/firmware 2>/dev/null | grep -v : ; echo end
            echo x > /proc/sysrq-trigger 2>/dev/null && echo sysrq-writable
            echo 1 > /proc/sys/vm/drop_caches 2>/dev/null && echo sys-writable; true
            """
        let r = try await Harness.exec(SandboxFixture.host, ["/bin/sh", "-c", script])
        #expect(r.status == 0, "\(r.stderr)")
        for line in r.stdout.split(separator: "\n") where line.hasPrefix("/proc/") {
            // The host's /dev/null (1:3), so reads are empty.
            #expect(line.hasSuffix(" 1:3 0"), "\(line)")
        }
        #expect(r.stdout.contains("/proc/keys"))
        #expect(r.stdout.hasSuffix("end\n"), "\(r.stdout)")
    }

    @Test func hostHomeStateAndAgentAreNotVisible() async throws {
        let u = Harness.user
        let paths = ["/home", "/root", "/run", "/var", "/opt", u.home, u.home + "/.local/state", Harness.agentBinary]
        let r = try await Harness.exec(SandboxFixture.host, ["/bin/sh", "-c", paths.map { "test -e \($0) && echo \($0)" }.joined(separator: "; ") + "; true"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "", "visible: \(r.stdout)")
    }

    @Test func networkNoneCannotReachTheHostLoopback() async throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, len) } }
        #expect(listen(listener, 8) == 0)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &len) } }
        let port = UInt16(bigEndian: addr.sin_port)
        let probe = """
            import socket, errno
            s = socket.socket()
            try:
                s.connect(("127.0.0.1", \(port))); print("connected")
            except OSError as e:
                print(errno.errorcode[e.errno])
            """
        let none = try await Harness.exec(SandboxFixture.host, ["/usr/bin/python3", "-c", probe])
        #expect(none.stdout == "ECONNREFUSED\n", "\(none.stdout) \(none.stderr)")
        // The same probe with the host network reaches the listener: the test itself works.
        let host = try await Harness.exec(["--rootfs", "host", "--policy", Harness.testPolicy("host-network"), "--seccomp", "unconfined",
                                           "--network", "host"], ["/usr/bin/python3", "-c", probe])
        #expect(host.stdout == "connected\n", "\(host.stdout) \(host.stderr)")
        let lo = try await Harness.exec(SandboxFixture.host, ["/bin/cat", "/sys/class/net/lo/operstate", "/sys/class/net/lo/flags"])
        #expect(lo.stdout.hasSuffix("0x9\n") || lo.stdout.contains("up"), "loopback is not up: \(lo.stdout)")
    }

    @Test func tiocstiCannotInjectIntoTheAgentsTerminal() async throws {
        // `script` gives the agent a real terminal as its controlling tty and stdin.
        let dir = try Harness.scratch("tty")
        try Harness.write("""
            import fcntl, termios, os, errno
            print("leader" if os.getsid(0) == os.getpid() else "not-leader")
            try:
                fcntl.ioctl(0, termios.TIOCSTI, b"x"); print("injected")
            except OSError as e:
                print(errno.errorcode[e.errno])
            """, to: dir + "/t.py")
        var agent = [Harness.agentBinary, "exec"] + SandboxFixture.host
            + ["--interactive", "--bind", "\(dir)/t.py:/t.py", "--", "/usr/bin/python3", "/t.py"]
        if Harness.isRoot {
            let u = Harness.user
            agent = ["/usr/bin/setpriv", "--reuid=\(u.uid)", "--regid=\(u.gid)", "--clear-groups"] + agent
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        p.arguments = ["-qec", agent.joined(separator: " "), "/dev/null"]
        p.environment = Harness.baseEnvironment()
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self).replacingOccurrences(of: "\r", with: "")
        #expect(text == "leader\nEPERM\n" || text == "leader\nEIO\n", "\(text)")
    }
}
