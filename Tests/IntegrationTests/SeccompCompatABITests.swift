import Foundation
import Testing

/// The default profile allows the native system-call ABI only (policies/README.md): a
/// 32-bit `int 0x80` call from a 64-bit process is killed with SIGSYS, while the same
/// program runs when seccomp is off. The program is assembled here with gcc (no libc, so
/// no 32-bit libraries are needed) and its folder bind-mounted at the rootfs's /tmp.
/// The compat ABI under test (`int 0x80` from a 64-bit process) exists on x86_64 only.
enum CompatABIHost {
    static let isX86_64: Bool = {
        #if arch(x86_64)
        return true
        #else
        return false
        #endif
    }()
}

@Suite(.enabled(if: CompatABIHost.isX86_64, "the int 0x80 compat ABI exists on x86_64 only"))
struct SeccompCompatABITests {
    static let source = """
        .globl _start
        _start:
            mov $20, %eax        /* i386 getpid */
            int $0x80
            test %eax, %eax
            jle 1f
            xor %edi, %edi       /* the compat call returned a pid: exit 0 */
            jmp 2f
        1:  mov $3, %edi         /* it returned an error: exit 3 */
        2:  mov $60, %eax        /* x86_64 exit */
            syscall

        """

    struct ProbeError: Error, CustomStringConvertible {
        var description: String
    }

    /// Assembles the probe with /usr/bin/gcc (ci/test.sh installs it). Throws when it cannot:
    /// the test fails, it never passes without having probed.
    static func probe() throws -> String {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/gcc") else {
            throw ProbeError(description: "/usr/bin/gcc is missing (ci/test.sh installs gcc)")
        }
        let dir = try Harness.scratch("compat")
        try Harness.write(source, to: dir + "/probe.S")
        let gcc = Process()
        gcc.executableURL = URL(fileURLWithPath: "/usr/bin/gcc")
        gcc.arguments = ["-nostdlib", "-static", "-o", dir + "/probe", dir + "/probe.S"]
        let err = Pipe()
        gcc.standardError = err
        try gcc.run()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        gcc.waitUntilExit()
        guard gcc.terminationStatus == 0 else {
            throw ProbeError(description: "gcc could not build the probe (exit \(gcc.terminationStatus)): \(message)")
        }
        chmod(dir + "/probe", 0o755)
        return dir + "/probe"
    }

    @Test func compatSystemCallIsKilledByTheDefaultProfile() async throws {
        let probe = try Self.probe()
        let folder = (probe as NSString).deletingLastPathComponent
        let base = ["--rootfs", Harness.busyboxRootfs, "--bind", "\(folder):/tmp:ro"]
        let open = try await Harness.exec(base + SandboxFixture.unconfined, ["/tmp/probe"])
        #expect(open.status == 0, "without seccomp the int 0x80 getpid works: \(open.stderr)")
        let filtered = try await Harness.exec(base, ["/tmp/probe"])
        #expect(filtered.status == 128 + SIGSYS, "expected death by SIGSYS, got \(filtered.status): \(filtered.stderr)")
    }

    /// exec's default filter is the policy's profile, not the project's: Docker's profile
    /// allows the x86 ABI, so under a policy naming it the same probe runs, with no flag.
    @Test func execAppliesThePolicysProfileByDefault() async throws {
        let probe = try Self.probe()
        let folder = (probe as NSString).deletingLastPathComponent
        let base = ["--rootfs", Harness.busyboxRootfs, "--bind", "\(folder):/tmp:ro"]
        let docker = try await Harness.exec(base + ["--policy", Harness.testPolicy("docker-seccomp")], ["/tmp/probe"])
        #expect(docker.status == 0, "Docker's profile allows int 0x80 getpid: \(docker.status) \(docker.stderr)")
        // The same policy through $AGENT_POLICY (the resolution run-job uses).
        let env = try await Harness.exec(base, ["/tmp/probe"], environment: ["AGENT_POLICY": Harness.testPolicy("docker-seccomp")])
        #expect(env.status == 0, "\(env.status) \(env.stderr)")
    }
}
