/// A set of Linux capabilities as a 64-bit mask (bit N = capability number N).
///
/// STUB: names are parsed with libcap in the policy work.
public struct CapabilitySet: Sendable, Hashable {
    public var mask: UInt64

    public init(mask: UInt64) { self.mask = mask }

    /// Parses names such as `CAP_CHOWN` or `chown` (case-insensitive); `ALL` means every
    /// capability the kernel knows. Throws naming the first unknown name.
    public init(names: [String]) throws {
        throw SeccompError(message: "capability names are not implemented yet")
    }

    /// Canonical names (`CAP_CHOWN`, ...), in capability-number order.
    public var names: [String] { [] }

    public static let empty = CapabilitySet(mask: 0)

    /// Docker's 14 default capabilities (see `policies/policy.json`).
    public static let dockerDefault = CapabilitySet(mask: 0x00000000a80425fb)
}
