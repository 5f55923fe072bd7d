import AgentSupport
import FoundationEssentials
import Glibc

/// A seccomp profile in Docker's JSON format (the format of moby's `profiles/seccomp`),
/// parsed and validated but not yet compiled. See `SeccompProfile(json:)` for the reader and
/// `SeccompPolicy.compile(capabilities:)` for the compiler.
public struct SeccompProfile: Sendable, Equatable {
    /// What a rule (or the default) does with a matching system call.
    public enum Action: String, Sendable, Equatable, CaseIterable {
        case allow = "SCMP_ACT_ALLOW"
        case errno = "SCMP_ACT_ERRNO"
        /// libseccomp's historical name for `killThread`.
        case kill = "SCMP_ACT_KILL"
        case killThread = "SCMP_ACT_KILL_THREAD"
        case killProcess = "SCMP_ACT_KILL_PROCESS"
        case trap = "SCMP_ACT_TRAP"
        case trace = "SCMP_ACT_TRACE"
        case log = "SCMP_ACT_LOG"

        /// Whether `errnoRet` means something for this action (the errno, or the tracer's message).
        var takesReturnCode: Bool { self == .errno || self == .trace }
    }

    /// How an argument is compared (libseccomp's `scmp_compare`).
    public enum Operator: String, Sendable, Equatable, CaseIterable {
        case notEqual = "SCMP_CMP_NE"
        case lessThan = "SCMP_CMP_LT"
        case lessOrEqual = "SCMP_CMP_LE"
        case equal = "SCMP_CMP_EQ"
        case greaterOrEqual = "SCMP_CMP_GE"
        case greaterThan = "SCMP_CMP_GT"
        /// `(arg & value) == valueTwo`.
        case maskedEqual = "SCMP_CMP_MASKED_EQ"
    }

    /// One condition on a system call argument.
    public struct Argument: Sendable, Equatable {
        /// Argument number, 0...5.
        public var index: UInt32
        public var value: UInt64
        public var valueTwo: UInt64
        public var op: Operator

        public init(index: UInt32, value: UInt64, valueTwo: UInt64 = 0, op: Operator) {
            self.index = index
            self.value = value
            self.valueTwo = valueTwo
            self.op = op
        }
    }

    /// A `major.minor` kernel version as Docker writes it in `minKernel`.
    public struct KernelVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
        public var major: Int
        public var minor: Int

        public init(major: Int, minor: Int) {
            self.major = major
            self.minor = minor
        }

        /// Parses `"4.8"`; also accepts a `uname -r` release such as `6.1.0-18-amd64`
        /// (only the leading `major.minor` counts). `nil` when there is no such prefix.
        public init?(_ text: String) {
            let parts = text.split(separator: ".", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count >= 2, let major = Int(parts[0]) else { return nil }
            let minorDigits = parts[1].prefix(while: \.isNumber)
            guard !minorDigits.isEmpty, let minor = Int(minorDigits) else { return nil }
            self.init(major: major, minor: minor)
        }

        public static func < (a: KernelVersion, b: KernelVersion) -> Bool {
            (a.major, a.minor) < (b.major, b.minor)
        }

        public var description: String { "\(major).\(minor)" }
    }

    /// Conditions under which a rule applies (`includes`) or does not (`excludes`).
    public struct Filter: Sendable, Equatable {
        /// Capability names such as `CAP_SYS_ADMIN`.
        public var caps: [String]
        /// Architectures in Go's spelling (`amd64`, `arm64`, `x32`, ...).
        public var arches: [String]
        public var minKernel: KernelVersion?

        public init(caps: [String] = [], arches: [String] = [], minKernel: KernelVersion? = nil) {
            self.caps = caps
            self.arches = arches
            self.minKernel = minKernel
        }

        public var isEmpty: Bool { caps.isEmpty && arches.isEmpty && minKernel == nil }
    }

    /// One entry of `syscalls`.
    public struct Rule: Sendable, Equatable {
        public var names: [String]
        public var action: Action
        public var errnoRet: UInt32?
        /// All conditions must hold (they are ANDed), except that conditions repeating an
        /// argument index become separate rules, as runc does.
        public var args: [Argument]
        public var includes: Filter
        public var excludes: Filter
        public var comment: String?

        public init(names: [String], action: Action, errnoRet: UInt32? = nil, args: [Argument] = [],
                    includes: Filter = Filter(), excludes: Filter = Filter(), comment: String? = nil) {
            self.names = names
            self.action = action
            self.errnoRet = errnoRet
            self.args = args
            self.includes = includes
            self.excludes = excludes
            self.comment = comment
        }
    }

    /// One entry of `archMap`: when `architecture` is the running one, the filter also
    /// covers `subArchitectures` (x86_64 -> x86, x32).
    public struct ArchitectureGroup: Sendable, Equatable {
        /// `SCMP_ARCH_X86_64` style tokens.
        public var architecture: String
        public var subArchitectures: [String]

        public init(architecture: String, subArchitectures: [String] = []) {
            self.architecture = architecture
            self.subArchitectures = subArchitectures
        }
    }

    public var defaultAction: Action
    public var defaultErrnoRet: UInt32?
    /// `SCMP_ARCH_*` tokens the filter covers (the older alternative to `archMap`).
    public var architectures: [String]
    public var archMap: [ArchitectureGroup]
    public var syscalls: [Rule]

    public init(defaultAction: Action, defaultErrnoRet: UInt32? = nil, architectures: [String] = [],
                archMap: [ArchitectureGroup] = [], syscalls: [Rule] = []) {
        self.defaultAction = defaultAction
        self.defaultErrnoRet = defaultErrnoRet
        self.architectures = architectures
        self.archMap = archMap
        self.syscalls = syscalls
    }
}

/// A profile that cannot be parsed or compiled; the message names the JSON path or rule.
public struct SeccompError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }

    /// An error at a JSON path of the profile, e.g. `syscalls[3].args[0].op: unknown operator`.
    static func at(_ path: String, _ problem: String) -> SeccompError {
        SeccompError(message: "seccomp profile: \(path): \(problem)")
    }
}
