import Foundation
import Testing
@testable import SandboxPolicy
import AgentCore

/// The project's own profile and policy: embedded copies equal the files, and the profile
/// blocks what it promises to block.
@Suite struct DefaultProfileTests {
    @Test func embeddedProfileEqualsTheFile() throws {
        #expect(Data(DefaultProfile.text.utf8) == (try TestFiles.repoFile("policies/seccomp-default.json")))
    }

    @Test func embeddedPolicyEqualsTheFile() throws {
        #expect(Data(DefaultPolicy.text.utf8) == (try TestFiles.repoFile("policies/policy.json")))
    }

    private var profile: SeccompProfile { get throws { try SeccompProfile(json: DefaultProfile.text) } }

    /// Native ABI only: no compat sub-architecture in the filter (see policies/README.md),
    /// which also keeps the program small enough to load quickly at every container start.
    @Test func coversOnlyTheNativeSystemCallABI() throws {
        let p = try profile
        #expect(p.archMap.allSatisfy { $0.subArchitectures.isEmpty })
        let bytes = try #require(try SeccompPolicy.projectDefault.compile(capabilities: .dockerDefault))
        #expect(bytes.count / 8 < 500, "\(bytes.count / 8) BPF instructions")
    }

    @Test func deniesByDefaultWithEPERM() throws {
        let p = try profile
        #expect(p.defaultAction == .errno)
        #expect(p.defaultErrnoRet == 1)
    }

    static let mustBlock = [
        "mount", "umount2", "pivot_root", "unshare", "setns", "keyctl", "add_key", "request_key", "bpf",
        "perf_event_open", "ptrace", "kexec_load", "kexec_file_load", "init_module", "finit_module",
        "delete_module", "reboot", "swapon", "swapoff", "open_by_handle_at", "userfaultfd", "settimeofday",
        "clock_settime", "acct", "quotactl",
    ]

    @Test(arguments: mustBlock)
    func blockedSyscallIsNeverAllowed(name: String) throws {
        let p = try profile
        for caps in [CapabilitySet.dockerDefault, .all] {
            let rules = SeccompCompiler.applicableRules(of: p, capabilities: caps, host: .current).map(\.rule)
            #expect(!rules.contains { $0.names.contains(name) && $0.action != .errno }, "\(name) is allowed")
        }
        // And it is listed in the explicit block rule, so the intent is visible in the file.
        #expect(p.syscalls.contains { $0.action == .errno && $0.errnoRet == 1 && $0.names.contains(name) })
    }

    @Test func cloneIsAllowedOnlyWithoutNamespaceFlags() throws {
        let p = try profile
        let rules = SeccompCompiler.applicableRules(of: p, capabilities: .all, host: .current).map(\.rule)
        let clone = rules.filter { $0.names.contains("clone") }
        #expect(clone.count == 1)
        let namespaceFlags: UInt64 = 0x0002_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000 | 0x2000_0000 | 0x4000_0000
        #expect(clone.first?.args == [.init(index: 0, value: namespaceFlags, valueTwo: 0, op: .maskedEqual)])
        let clone3 = rules.filter { $0.names.contains("clone3") }
        #expect(clone3.map(\.action) == [.errno])
        #expect(clone3.first?.errnoRet == 38)
    }

    @Test func socketsAreLimitedToUnixAndIP() throws {
        let p = try profile
        let socketRules = p.syscalls.filter { $0.names.contains("socket") }
        #expect(socketRules.count == 9)
        for rule in socketRules {
            let domain = try #require(rule.args.first { $0.index == 0 })
            #expect(domain.op == .equal && [1, 2, 10].contains(domain.value))
            let type = try #require(rule.args.first { $0.index == 1 })
            #expect(type.op == .maskedEqual && type.value == 0xf && [1, 2, 5].contains(type.valueTwo))
        }
        #expect(DefaultProfile.netlinkRules.allSatisfy { $0.args.contains(.init(index: 0, value: 16, op: .equal)) })
        #expect(DefaultProfile.rawSocketRules.count == 3)
    }

    @Test func ordinarySyscallsAreAllowed() throws {
        let p = try profile
        let allowed = Set(p.syscalls.filter { $0.action == .allow && $0.args.isEmpty && $0.includes.isEmpty }.flatMap(\.names))
        for name in ["read", "write", "openat", "execve", "mmap", "futex", "rt_sigaction", "wait4", "pipe2",
                     "getdents64", "statx", "newfstatat", "epoll_wait", "connect", "fork", "vfork", "rseq",
                     "prlimit64", "getrandom", "exit_group", "arch_prctl", "set_robust_list"] {
            #expect(allowed.contains(name), "\(name) is not allowed")
        }
    }

    @Test func noSyscallIsBothAllowedAndBlocked() throws {
        let p = try profile
        let blocked = Set(p.syscalls.filter { $0.action == .errno }.flatMap(\.names))
        let allowed = Set(p.syscalls.filter { $0.action == .allow }.flatMap(\.names))
        #expect(blocked.intersection(allowed).isEmpty)
    }
}
