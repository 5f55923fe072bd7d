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
}
