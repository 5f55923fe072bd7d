import Foundation
import Testing

/// containers-common profiles (errno names) applied to real containers.
@Suite struct SeccompContainersCommonTests {
    static let installedProfile = "/usr/share/containers/seccomp.json"

    /// A rule's `errno` name is the errno the call gets.
    @Test func errnoNameIsWhatTheCallReturns() async throws {
        let dir = try Harness.scratch("errno")
        try Harness.write("""
        {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
          {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errno": "EXDEV"}]}
        """, to: dir + "/profile.json")
        let r = try await Harness.exec(["--policy", Harness.testPolicy("unconfined"), "--tmpfs", "/tmp", "--seccomp", dir + "/profile.json"],
                                       ["/bin/sh", "-c", "mkdir /tmp/x; echo rc=$?; touch /tmp/y && echo touched"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains(String(cString: strerror(EXDEV))), "\(r.stderr)")
        #expect(r.stdout == "rc=1\ntouched\n", "\(r.stdout)")
    }

    /// Debian's golang-github-containers-common profile, unchanged: ordinary programs run;
    /// what it denies gets the errno it names (`defaultErrno` ENOSYS, `errno` EPERM).
    // ci/test.sh installs golang-github-containers-common: a missing profile fails here.
    @Test
    func installedProfileRunsProgramsAndDenies() async throws {
        let opts = ["--policy", Harness.testPolicy("unconfined"), "--tmpfs", "/tmp", "--seccomp", Self.installedProfile]
        let ok = try await Harness.exec(opts, ["/bin/sh", "-c", "ls / >/dev/null && echo hi > /tmp/f && cat /tmp/f && python3 -c 'print(6*7)'"])
        #expect(ok.status == 0 && ok.stdout == "hi\n42\n", "\(ok.stderr)")
        #if arch(x86_64)
        // personality(1) is not among the allowed arguments: the default action, ENOSYS
        // (the kernel itself would accept it); uselib (134) is listed with errno EPERM.
        let script = """
        import ctypes; libc = ctypes.CDLL(None, use_errno=True)
        for nr, arg in ((135, 1), (134, 0)):
            ctypes.set_errno(0); libc.syscall(nr, arg); print(ctypes.get_errno())
        """
        let denied = try await Harness.exec(opts, ["python3", "-c", script])
        #expect(denied.status == 0, "\(denied.stderr)")
        #expect(denied.stdout == "\(ENOSYS)\n\(EPERM)\n", "\(denied.stdout)")
        #endif
    }
}
