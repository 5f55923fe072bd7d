/// Which seccomp filter a container gets.
///
/// STUB: profiles are parsed and compiled with libseccomp in the policy work.
public enum SeccompPolicy: Sendable, Equatable {
    /// No filter (still no_new_privs).
    case unconfined
    /// The project's own profile from `policies/seccomp-default.json`.
    case projectDefault
    /// A Docker-format profile's JSON text.
    case profile(json: String)

    /// The BPF program (an array of `struct sock_filter`, 8 bytes each, native byte order)
    /// for this policy on the running architecture, given the capabilities the container
    /// keeps (Docker profiles include or exclude rules by capability). `nil` for `.unconfined`.
    /// Compiled with libseccomp once per (profile, architecture, capabilities) and cached.
    public func compile(capabilities: CapabilitySet) throws -> [UInt8]? {
        if case .unconfined = self { return nil }
        throw SeccompError(message: "seccomp compilation is not implemented yet")
    }
}

/// A profile that cannot be parsed or compiled; the message names the JSON path or rule.
public struct SeccompError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}
