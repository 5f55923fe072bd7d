import Foundation
import Testing

/// The container's mounts are locked (review 2.2.2): even with CAP_SYS_ADMIN and Docker's
/// profile (which allows mount, umount2 and unshare with that capability) a job can neither
/// remount, unmount nor mount over anything, and host binds are nosuid,nodev.
@Suite struct SandboxLockedMountsTests {
    static var adminOptions: [String] {
        ["--rootfs", "host", "--tmpfs", "/tmp", "--policy", Harness.testPolicy("sys-admin-docker"), "--cap-add", "SYS_ADMIN"]
    }

    /// Prints `name ERRNO` (or `name ok`) for each attempt, in the container's mount
    /// namespace and then in one the job makes itself (where every mount is MNT_LOCKED).
    static let attempts = #"""
    import ctypes, errno, os
    libc = ctypes.CDLL(None, use_errno=True)
    MS_RDONLY, MS_REMOUNT, MS_BIND, MNT_DETACH, CLONE_NEWNS = 1, 32, 4096, 2, 0x20000
    def check(name, fn):
        ctypes.set_errno(0)
        try:
            rc = fn()
            e = ctypes.get_errno() if rc == -1 else 0
        except OSError as ex:
            e = ex.errno
        print(name, errno.errorcode.get(e, "ok"), flush=True)
    def write(path):
        with open(path, "w") as f: f.write("changed")
        return 0
    eff = int([l for l in open("/proc/self/status") if l.startswith("CapEff")][0].split()[1], 16)
    print("sys_admin", "yes" if eff & (1 << 21) else "no")
    # A masked file (/proc/kcore is absent on kernels without CONFIG_PROC_KCORE).
    masked = [f for f in ("/proc/kcore", "/proc/keys", "/proc/timer_list") if os.path.exists(f)][0].encode()
    def round(prefix):
        check(prefix + "remount-bind-rw", lambda: libc.mount(None, b"/w", None, MS_REMOUNT | MS_BIND, None))
        check(prefix + "write-bind", lambda: write("/w/file"))
        check(prefix + "umount-proc-sys", lambda: libc.umount2(b"/proc/sys", MNT_DETACH))
        check(prefix + "unmask", lambda: libc.umount2(masked, MNT_DETACH))
        check(prefix + "remount-root-rw", lambda: libc.mount(None, b"/", None, MS_REMOUNT | MS_BIND, None))
        check(prefix + "write-root", lambda: write("/new-file"))
        check(prefix + "umount-bind", lambda: libc.umount2(b"/w", MNT_DETACH))
    round("")
    check("mount-over-bind", lambda: libc.mount(b"tmpfs", b"/w", b"tmpfs", 0, None))
    check("unshare-mnt", lambda: libc.unshare(CLONE_NEWNS))
    round("ns-")
    """#

    static func parse(_ out: String) -> [String: String] {
        var got: [String: String] = [:]
        for line in out.split(separator: "\n") {
            let p = line.split(separator: " ")
            if p.count == 2 { got[String(p[0])] = String(p[1]) }
        }
        return got
    }

    @Test func sysAdminCannotChangeTheContainersMounts() async throws {
        let dir = try Harness.scratch("locked")
        try Harness.write("original", to: dir + "/file")
        let r = try await Harness.exec(Self.adminOptions + ["--bind", "\(dir):/w:ro"], ["/usr/bin/python3", "-c", Self.attempts])
        #expect(r.status == 0, "\(r.stderr)")
        let got = Self.parse(r.stdout)
        // The job really holds CAP_SYS_ADMIN: what stops it is the lock, not a missing capability.
        #expect(got["sys_admin"] == "yes", "\(r.stdout)")
        // In the container's mount namespace (owned by the outer user namespace): no mount rights at all.
        for name in ["remount-bind-rw", "umount-proc-sys", "unmask", "remount-root-rw", "umount-bind", "mount-over-bind"] {
            #expect(got[name] == "EPERM", "\(name): \(got[name] ?? "missing")")
        }
        #expect(got["write-bind"] == "EROFS" && got["write-root"] == "EROFS", "\(r.stdout)")
        // In a mount namespace of its own every inherited mount is locked: no unmount (EINVAL),
        // no clearing of a locked read-only flag (EPERM).
        #expect(got["unshare-mnt"] == "ok", "\(r.stdout)")
        #expect(got["ns-remount-bind-rw"] == "EPERM" && got["ns-remount-root-rw"] == "EPERM", "\(r.stdout)")
        for name in ["ns-umount-proc-sys", "ns-unmask", "ns-umount-bind"] {
            #expect(got[name] == "EINVAL", "\(name): \(got[name] ?? "missing")")
        }
        #expect(got["ns-write-bind"] == "EROFS" && got["ns-write-root"] == "EROFS", "\(r.stdout)")
        #expect(try String(contentsOfFile: dir + "/file", encoding: .utf8) == "original")
    }

    @Test(.enabled(if: Harness.isRoot, "mknod and a root-owned setuid file need root"))
    func hostBindsAreNosuidAndNodev() async throws {
        let dir = try Harness.scratch("nodev")
        try SandboxFixture.run("/usr/bin/mknod", ["-m", "666", dir + "/null", "c", "1", "3"])
        try SandboxFixture.run("/usr/bin/install", ["-m", "4755", "-o", "root", "/usr/bin/id", dir + "/suid-id"])
        // The control: on the host both work (the node is a usable /dev/null, the file setuid).
        #expect(FileManager.default.isWritableFile(atPath: dir + "/null"))
        let script = """
            echo x > /d/null && echo dev-open || echo dev-refused
            echo x > /dev/null && echo devnull-ok
            test -u /d/suid-id && echo suid-bit
            /d/suid-id -u
            id -u
            grep ' /d ' /proc/self/mountinfo | grep -q 'nosuid,nodev' && echo flags
            """
        for idMap in ["single", "subordinate"] {
            let r = try await Harness.exec(Self.adminOptions + ["--id-map", idMap, "--bind", "\(dir):/d:rw"], ["/bin/sh", "-c", script])
            #expect(r.status == 0, "\(idMap): \(r.stderr)")
            #expect(r.stdout == "dev-refused\ndevnull-ok\nsuid-bit\n0\n0\nflags\n", "\(idMap): \(r.stdout) \(r.stderr)")
        }
    }
}
