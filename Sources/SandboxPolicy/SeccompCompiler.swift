import CSeccomp
import AgentSupport
import FoundationEssentials
import Glibc

/// A compiled filter: the raw `struct sock_filter[]` the kernel loads, plus what the
/// compiler decided along the way (for `agent debug seccomp` and tests).
public struct SeccompProgram: Sendable, Equatable {
    /// `struct sock_filter` entries, 8 bytes each, native byte order.
    public var bytes: [UInt8]
    /// libseccomp names of the architectures the filter accepts (others are killed).
    public var architectures: [String]
    /// Syscall names this libseccomp does not know; their rules were skipped (as runc does).
    public var skippedNames: [String]

    /// Number of BPF instructions.
    public var instructionCount: Int { bytes.count / 8 }
}

/// Turns a parsed profile into BPF with libseccomp. Pure with respect to its inputs:
/// the same profile, capabilities and host always give the same bytes.
enum SeccompCompiler {
    /// The rules that apply on `host` for a container keeping `capabilities`, decided the way
    /// Docker does: `includes` must all hold (every listed capability held, the architecture
    /// listed, the kernel at least `minKernel`); any `excludes` that holds drops the rule.
    static func applicableRules(of profile: SeccompProfile, capabilities: CapabilitySet,
                                host: SeccompHost) -> [(index: Int, rule: SeccompProfile.Rule)] {
        let archNames = SeccompArchitecture.filterNames(native: host.architecture)
        let kernel = host.kernelVersion
        return profile.syscalls.enumerated().compactMap { index, rule in
            let inc = rule.includes, exc = rule.excludes
            if !inc.caps.isEmpty && !inc.caps.allSatisfy(capabilities.contains(name:)) { return nil }
            if !inc.arches.isEmpty && !inc.arches.contains(where: archNames.contains) { return nil }
            if let min = inc.minKernel, let kernel, kernel < min { return nil }
            if exc.caps.contains(where: capabilities.contains(name:)) { return nil }
            if exc.arches.contains(where: archNames.contains) { return nil }
            if let min = exc.minKernel, let kernel, kernel >= min { return nil }
            return (index, rule)
        }
    }

    /// libseccomp's action value (`SCMP_ACT_ERRNO(n)` and friends are C macros Swift cannot call).
    static func actionValue(_ action: SeccompProfile.Action, returnCode: UInt32?) -> UInt32 {
        let eperm: UInt32 = 1
        switch action {
        case .allow: return 0x7fff_0000
        case .errno: return 0x0005_0000 | ((returnCode ?? eperm) & 0xffff)
        case .kill, .killThread: return 0x0000_0000
        case .killProcess: return 0x8000_0000
        case .trap: return 0x0003_0000
        case .trace: return 0x7ff0_0000 | ((returnCode ?? eperm) & 0xffff)
        case .log: return 0x7ffc_0000
        }
    }

    static func compile(_ profile: SeccompProfile, capabilities: CapabilitySet, host: SeccompHost) throws -> SeccompProgram {
        let defaultAction = actionValue(profile.defaultAction, returnCode: profile.defaultErrnoRet)
        guard let ctx = seccomp_init(defaultAction) else {
            throw SeccompError(message: "seccomp: libseccomp could not create a filter with default action \(profile.defaultAction.rawValue)")
        }
        defer { seccomp_release(ctx) }
        // We only export the program; the sandbox child sets no_new_privs itself before loading it.
        try check(seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0), "disabling the no_new_privs attribute")

        var architectures = [host.architecture]
        for name in SeccompArchitecture.covered(by: profile, native: host.architecture).dropFirst() {
            let token = seccomp_arch_resolve_name(name)
            // An architecture this libseccomp does not know stays out of the filter, so its
            // syscalls hit the bad-architecture action (kill): skipping it is the safe side.
            guard token != 0 else { continue }
            let rc = seccomp_arch_add(ctx, token)
            if rc == 0 { architectures.append(name) } else if rc != -EEXIST {
                try check(rc, "adding architecture \(name)")
            }
        }

        var skipped: [String] = []
        for (index, rule) in applicableRules(of: profile, capabilities: capabilities, host: host) {
            let action = actionValue(rule.action, returnCode: rule.errnoRet)
            // libseccomp refuses rules that repeat the default action; they change nothing.
            if action == defaultAction { continue }
            for name in rule.names {
                let number = seccomp_syscall_resolve_name(name)
                if number == __NR_SCMP_ERROR {
                    skipped.append(name)
                    continue
                }
                for conditions in conditionGroups(rule.args) {
                    let rc = conditions.withUnsafeBufferPointer { buffer in
                        seccomp_rule_add_array(ctx, action, number, UInt32(buffer.count), buffer.baseAddress)
                    }
                    try check(rc, "syscalls[\(index)] (\(name))")
                }
            }
        }
        let bytes = try export(ctx)
        var seen = Set<String>()
        return SeccompProgram(bytes: bytes, architectures: architectures,
                              skippedNames: skipped.filter { seen.insert($0).inserted })
    }

    /// The argument conditions of one rule as libseccomp calls: all in one call, unless an
    /// argument index repeats (libseccomp cannot AND two conditions on one argument), in
    /// which case each condition becomes its own rule, as runc does.
    static func conditionGroups(_ args: [SeccompProfile.Argument]) -> [[scmp_arg_cmp]] {
        let conditions = args.map { arg in
            scmp_arg_cmp(arg: arg.index, op: op(arg.op), datum_a: arg.value, datum_b: arg.valueTwo)
        }
        if conditions.isEmpty { return [[]] }
        let indexes = Set(args.map(\.index))
        return indexes.count == args.count ? [conditions] : conditions.map { [$0] }
    }

    private static func op(_ op: SeccompProfile.Operator) -> scmp_compare {
        switch op {
        case .notEqual: SCMP_CMP_NE
        case .lessThan: SCMP_CMP_LT
        case .lessOrEqual: SCMP_CMP_LE
        case .equal: SCMP_CMP_EQ
        case .greaterOrEqual: SCMP_CMP_GE
        case .greaterThan: SCMP_CMP_GT
        case .maskedEqual: SCMP_CMP_MASKED_EQ
        }
    }

    /// libseccomp 2.5 exports only to a file descriptor, so export into a memfd (or, where
    /// there is none, an unlinked temporary file) and read it back.
    private static func export(_ ctx: scmp_filter_ctx) throws -> [UInt8] {
        let fd = anonymousFile()
        guard fd >= 0 else {
            throw SeccompError(message: "seccomp: no anonymous file for the exported filter: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        try check(seccomp_export_bpf(ctx, fd), "exporting the filter")
        let size = lseek(fd, 0, SEEK_END)
        guard size > 0, size % 8 == 0, lseek(fd, 0, SEEK_SET) == 0 else {
            throw SeccompError(message: "seccomp: libseccomp exported \(size) bytes, not a whole number of instructions")
        }
        var bytes = [UInt8](repeating: 0, count: Int(size))
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw SeccompError(message: "seccomp: reading the exported filter failed after \(done) bytes")
            }
            done += n
        }
        return bytes
    }

    private typealias MemfdCreate = @convention(c) (UnsafePointer<CChar>, UInt32) -> Int32

    /// Swift's Glibc module is built without _GNU_SOURCE, so `memfd_create` is not
    /// declared; glibc (2.27+) still exports it, so look it up by name.
    private static let memfdCreate: MemfdCreate? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "memfd_create") else { return nil }
        return unsafeBitCast(symbol, to: MemfdCreate.self)
    }()

    private static func anonymousFile() -> Int32 {
        let mfdCloexec: UInt32 = 1
        if let memfdCreate {
            let fd = memfdCreate("agent-seccomp-bpf", mfdCloexec)
            if fd >= 0 { return fd }
        }
        guard let file = tmpfile() else { return -1 }
        defer { fclose(file) }
        return fcntl(fileno(file), F_DUPFD_CLOEXEC, 0)
    }

    private static func check(_ rc: Int32, _ what: String) throws {
        guard rc < 0 else { return }
        throw SeccompError(message: "seccomp: libseccomp failed at \(what): \(String(cString: strerror(-rc)))")
    }
}
