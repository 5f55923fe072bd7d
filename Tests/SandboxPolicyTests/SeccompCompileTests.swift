import Foundation
import Testing
@testable import SandboxPolicy

/// Compiling profiles to BPF with libseccomp on this machine.
@Suite struct SeccompCompileTests {
    @Test func dockerProfileLoadsAndCompilesUnchanged() throws {
        let text = try TestFiles.dockerProfile()
        let profile = try SeccompProfile(json: text)
        #expect(profile.defaultAction == .errno)
        let program = try #require(try SeccompPolicy.profile(json: text).program(capabilities: .dockerDefault, cache: SeccompCache()))
        #expect(program.instructionCount > 100)
        #expect(program.bytes.count % 8 == 0)
        if SeccompHost.current.architecture == "x86_64" {
            #expect(program.architectures == ["x86_64", "x86", "x32"])
        }
        // The shared entry point returns the same bytes.
        #expect(try SeccompPolicy.profile(json: text).compile(capabilities: .dockerDefault) == program.bytes)
    }

    @Test func projectDefaultCompiles() throws {
        let bytes = try #require(try SeccompPolicy.projectDefault.compile(capabilities: .dockerDefault))
        #expect(bytes.count / 8 > 100)
        let program = try #require(try SeccompPolicy.projectDefault.program(capabilities: .dockerDefault, cache: SeccompCache()))
        #expect(program.bytes == bytes)
        // struct sock_filter { u16 code; u8 jt, jf; u32 k; }: the program starts by loading
        // seccomp_data.arch (BPF_LD|BPF_W|BPF_ABS = 0x20, offset 4) to check the architecture.
        let code = UInt16(bytes[0]) | UInt16(bytes[1]) << 8
        let k = UInt32(bytes[4]) | UInt32(bytes[5]) << 8 | UInt32(bytes[6]) << 16 | UInt32(bytes[7]) << 24
        #expect(code == 0x20 && k == 4)
    }

    @Test func unconfinedHasNoProgram() throws {
        #expect(try SeccompPolicy.unconfined.compile(capabilities: .dockerDefault) == nil)
    }

    @Test func capabilitiesSelectDockerRules() throws {
        let docker = try SeccompProfile(json: try TestFiles.dockerProfile())
        let host = SeccompHost.current
        let admin = try CapabilitySet(names: ["CAP_SYS_ADMIN"]).union(.dockerDefault)
        let plain = SeccompCompiler.applicableRules(of: docker, capabilities: .dockerDefault, host: host).map(\.rule)
        let withAdmin = SeccompCompiler.applicableRules(of: docker, capabilities: admin, host: host).map(\.rule)
        // Without CAP_SYS_ADMIN clone is allowed only without namespace flags and clone3 is ENOSYS;
        // with it, clone and clone3 are allowed outright.
        #expect(plain.contains { $0.names == ["clone"] && !$0.args.isEmpty })
        #expect(plain.contains { $0.names == ["clone3"] && $0.action == .errno && $0.errnoRet == 38 })
        #expect(!plain.contains { $0.names.contains("clone") && $0.args.isEmpty })
        #expect(withAdmin.contains { $0.names.contains("clone") && $0.args.isEmpty && $0.action == .allow })
        #expect(!withAdmin.contains { $0.names == ["clone3"] && $0.action == .errno })

        let text = try TestFiles.dockerProfile()
        let cache = SeccompCache()
        let a = try cache.program(profileText: text, capabilities: .dockerDefault)
        let b = try cache.program(profileText: text, capabilities: admin)
        #expect(a.bytes != b.bytes)
        #expect(cache.statistics.compiles == 2)
    }

    @Test func minKernelDependsOnTheRunningKernel() throws {
        let text = """
        {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
          {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
          {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "5.10"}},
          {"names": ["kcmp"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "5.10"}}
        ]}
        """
        let profile = try SeccompProfile(json: text)
        func names(kernel: String) -> [String] {
            let host = SeccompHost(architecture: "x86_64", kernelRelease: kernel, libseccompVersion: "test")
            return SeccompCompiler.applicableRules(of: profile, capabilities: .empty, host: host).flatMap(\.rule.names)
        }
        #expect(names(kernel: "5.4.0-100-generic") == ["read", "kcmp"])
        #expect(names(kernel: "5.10.0") == ["read", "ptrace"])
        #expect(names(kernel: "6.1.0-18-amd64") == ["read", "ptrace"])

        let native = SeccompHost.current
        let old = SeccompCache(host: SeccompHost(architecture: native.architecture, kernelRelease: "4.19.0", libseccompVersion: native.libseccompVersion))
        let new = SeccompCache(host: SeccompHost(architecture: native.architecture, kernelRelease: "6.1.0", libseccompVersion: native.libseccompVersion))
        #expect(try old.program(profileText: text, capabilities: .empty).bytes != new.program(profileText: text, capabilities: .empty).bytes)
    }

    @Test func architectureFiltersUseGoNames() throws {
        let docker = try SeccompProfile(json: try TestFiles.dockerProfile())
        let amd64 = SeccompHost(architecture: "x86_64", kernelRelease: "6.1.0", libseccompVersion: "test")
        let arm64 = SeccompHost(architecture: "aarch64", kernelRelease: "6.1.0", libseccompVersion: "test")
        let onAmd64 = SeccompCompiler.applicableRules(of: docker, capabilities: .dockerDefault, host: amd64).flatMap(\.rule.names)
        let onArm64 = SeccompCompiler.applicableRules(of: docker, capabilities: .dockerDefault, host: arm64).flatMap(\.rule.names)
        #expect(onAmd64.contains("arch_prctl"))
        #expect(!onAmd64.contains("arm_fadvise64_64"))
        #expect(onArm64.contains("arm_fadvise64_64"))
        #expect(!onArm64.contains("arch_prctl"))
        #expect(SeccompArchitecture.covered(by: docker, native: "x86_64") == ["x86_64", "x86", "x32"])
        #expect(SeccompArchitecture.covered(by: docker, native: "riscv64") == ["riscv64"])
    }

    @Test func unknownSyscallNamesAreSkipped() throws {
        let text = #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read", "no_such_syscall_here"], "action": "SCMP_ACT_ALLOW"}]}"#
        let program = try SeccompCache().program(profileText: text, capabilities: .empty)
        #expect(program.skippedNames == ["no_such_syscall_here"])
        #expect(program.instructionCount > 0)
    }

    @Test func everyActionCompiles() throws {
        for action in SeccompProfile.Action.allCases where action != .errno {
            let text = """
            {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 13, "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
             "syscalls": [{"names": ["getpid"], "action": "\(action.rawValue)"}, {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22}]}
            """
            #expect(try SeccompCache().program(profileText: text, capabilities: .empty).instructionCount > 0, "\(action)")
        }
    }

    @Test func repeatedArgumentIndexesBecomeSeparateRules() {
        let same = SeccompCompiler.conditionGroups([.init(index: 0, value: 1, op: .equal), .init(index: 0, value: 2, op: .equal)])
        let different = SeccompCompiler.conditionGroups([.init(index: 0, value: 1, op: .equal), .init(index: 1, value: 2, op: .equal)])
        #expect(same.map(\.count) == [1, 1])
        #expect(different.map(\.count) == [2])
        #expect(SeccompCompiler.conditionGroups([]).map(\.count) == [0])
    }

    @Test func actionValuesMatchLibseccomp() {
        #expect(SeccompCompiler.actionValue(.allow, returnCode: nil) == 0x7fff_0000)
        #expect(SeccompCompiler.actionValue(.errno, returnCode: nil) == 0x0005_0001)
        #expect(SeccompCompiler.actionValue(.errno, returnCode: 38) == 0x0005_0026)
        #expect(SeccompCompiler.actionValue(.killProcess, returnCode: nil) == 0x8000_0000)
        #expect(SeccompCompiler.actionValue(.kill, returnCode: nil) == SeccompCompiler.actionValue(.killThread, returnCode: nil))
    }

    @Test func socketOptionsChangeTheProjectProfile() throws {
        let caps = CapabilitySet.dockerDefault
        #expect(SeccompPolicy.projectDefault(allowNetlink: false, allowRawSockets: false) == .projectDefault)
        let variants = [
            SeccompPolicy.projectDefault,
            .projectDefault(allowNetlink: true, allowRawSockets: false),
            .projectDefault(allowNetlink: false, allowRawSockets: true),
            .projectDefault(allowNetlink: true, allowRawSockets: true),
        ]
        let programs = try variants.map { try #require(try $0.compile(capabilities: caps)) }
        #expect(Set(programs).count == 4)
        let both = try SeccompProfile(json: try #require(variants[3].profileText))
        let base = try SeccompProfile(json: DefaultProfile.text)
        #expect(both.syscalls == base.syscalls + DefaultProfile.netlinkRules + DefaultProfile.rawSocketRules)
    }
}
