/// A set of Linux capabilities as a 64-bit mask (bit N = capability number N).
///
/// STUB: names are parsed with libcap in the policy work.
public struct CapabilitySet: Sendable, Hashable {
    public var mask: UInt64

    public init(mask: UInt64) { self.mask = mask }

    public static let empty = CapabilitySet(mask: 0)

    /// Docker's 14 default capabilities (see `policies/policy.json`).
    public static let dockerDefault = CapabilitySet(mask: 0x00000000a80425fb)
}
