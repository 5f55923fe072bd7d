import AgentSupport
import CAgentSys
import FoundationEssentials
import Glibc

/// A set of Linux capabilities as a 64-bit mask (bit N = capability number N).
///
/// Names are parsed and printed with the table in `CapabilityNames` (libcap's spelling);
/// `ALL` means every capability the running kernel knows (`/proc/sys/kernel/cap_last_cap`).
public struct CapabilitySet: Sendable, Hashable {
    public var mask: UInt64

    public init(mask: UInt64) { self.mask = mask }

    /// Parses names such as `CAP_CHOWN` or `chown` (case-insensitive); `ALL` means every
    /// capability the kernel knows. Throws `CapabilityError.unknownName` naming the first
    /// unknown name.
    public init(names: [String]) throws {
        var mask: UInt64 = 0
        for name in names {
            if Self.isAll(name) {
                mask |= Self.all.mask
            } else {
                mask |= 1 << UInt64(try Self.number(of: name))
            }
        }
        self.mask = mask
    }

    /// Canonical names (`CAP_CHOWN`, ...), in capability-number order.
    public var names: [String] {
        (0..<64).filter { contains(number: $0) }.map(Self.name(of:))
    }

    public static let empty = CapabilitySet(mask: 0)

    /// Docker's 14 default capabilities (see `policies/policy.json`): CHOWN, DAC_OVERRIDE,
    /// FSETID, FOWNER, MKNOD, NET_RAW, SETGID, SETUID, SETFCAP, SETPCAP, NET_BIND_SERVICE,
    /// SYS_CHROOT, KILL, AUDIT_WRITE.
    public static let dockerDefault = CapabilitySet(mask: 0x00000000a80425fb)

    /// Every capability the running kernel knows (0 through `cap_last_cap`).
    public static var all: CapabilitySet {
        let last = lastCapability
        return CapabilitySet(mask: last >= 63 ? .max : (UInt64(1) << UInt64(last + 1)) - 1)
    }

    /// The highest capability number of the running kernel, from
    /// `/proc/sys/kernel/cap_last_cap`, else probed the way libcap's `cap_max_bits()` does
    /// (the highest number `PR_CAPBSET_READ` accepts).
    public static let lastCapability: Int = {
        if let text = readSmallTextFile("/proc/sys/kernel/cap_last_cap", limit: 64),
           let last = Int(text.trimmingWhitespaceAndNewlines()), (0..<64).contains(last) {
            return last
        }
        return probedLastCapability()
    }()

    /// The highest capability number the kernel's `PR_CAPBSET_READ` accepts (0 if none is).
    static func probedLastCapability() -> Int {
        var last = 0
        for number in 0..<64 where agent_capbset_read(UInt(number)) >= 0 { last = number }
        return last
    }

    public func contains(number: Int) -> Bool {
        (0..<64).contains(number) && mask & (1 << UInt64(number)) != 0
    }

    public func contains(_ other: CapabilitySet) -> Bool { other.mask & ~mask == 0 }
    public func union(_ other: CapabilitySet) -> CapabilitySet { CapabilitySet(mask: mask | other.mask) }
    public func intersection(_ other: CapabilitySet) -> CapabilitySet { CapabilitySet(mask: mask & other.mask) }
    public func subtracting(_ other: CapabilitySet) -> CapabilitySet { CapabilitySet(mask: mask & ~other.mask) }
    public var isEmpty: Bool { mask == 0 }

    /// Whether the set holds the capability called `name`; `false` for names the table does
    /// not know (a profile may mention capabilities newer than this host).
    public func contains(name: String) -> Bool {
        guard let number = try? Self.number(of: name) else { return false }
        return contains(number: number)
    }

    /// `docker run --cap-drop/--cap-add` semantics, narrowed to what the policy allows.
    ///
    /// Starts from `policy`; `drop` removes capabilities (`ALL` removes every one), then `add`
    /// puts capabilities back (`ALL` means everything the policy allows). A job or the CLI
    /// may only narrow the policy: adding a capability outside `policy` throws
    /// `CapabilityError.notAllowed` naming it. Unknown names throw `.unknownName`.
    public static func narrowing(_ policy: CapabilitySet, drop: [String], add: [String]) throws -> CapabilitySet {
        var result = policy
        if drop.contains(where: isAll) {
            result = .empty
        } else {
            result = result.subtracting(try CapabilitySet(names: drop))
        }
        for name in add {
            if isAll(name) {
                result = result.union(policy)
                continue
            }
            let number = try Self.number(of: name)
            guard policy.contains(number: number) else {
                throw CapabilityError.notAllowed(Self.name(of: number))
            }
            result.mask |= 1 << UInt64(number)
        }
        return result
    }

    /// The capability number of `name` (`CAP_CHOWN`, `chown`, `Cap_Chown`); a name the
    /// running kernel does not have (past `lastCapability`) is unknown too.
    public static func number(of name: String) throws -> Int {
        let trimmed = name.trimmingWhitespace()
        // A policy should say what it means by name, not by a bare number.
        guard !trimmed.isEmpty, !trimmed.allSatisfy(\.isNumber) else { throw CapabilityError.unknownName(name) }
        var lower = trimmed.lowercased()
        if !lower.hasPrefix("cap_") { lower = "cap_" + lower }
        guard let value = CapabilityNames.number(of: lower), value <= lastCapability else {
            throw CapabilityError.unknownName(name)
        }
        return value
    }

    /// The canonical name of capability `number` (`CAP_CHOWN`); capabilities newer than the
    /// table come back as libcap prints them (the number).
    public static func name(of number: Int) -> String {
        guard let name = CapabilityNames.name(of: number) else { return String(number) }
        return name.uppercased()
    }

    private static func isAll(_ name: String) -> Bool {
        name.trimmingWhitespace().uppercased() == "ALL"
    }
}

extension CapabilitySet: CustomStringConvertible {
    public var description: String { names.isEmpty ? "(none)" : names.joined(separator: ",") }
}

/// A capability list that cannot be honoured; each case names the capability.
public enum CapabilityError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The capability table and the running kernel do not know this name.
    case unknownName(String)
    /// The capability exists but the agent policy does not allow it (jobs may only narrow).
    case notAllowed(String)

    public var description: String {
        switch self {
        case .unknownName(let name): "unknown capability \(name)"
        case .notAllowed(let name): "capability \(name) is not allowed by the agent policy"
        }
    }
}
