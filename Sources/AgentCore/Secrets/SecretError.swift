import AgentSupport

/// Why a secret could not be set up. Every case names the secret id (or the `--secret`
/// flag text) and the place that was looked at, never the value. Exit code 2 (bad input):
/// a job with a broken secret fails before any step runs.
public enum SecretError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A `--secret` flag that does not follow BuildKit's syntax.
    case invalidFlag(flag: String, reason: String)
    /// A required secret that no operator source provides (no `--secret` flag, no policy
    /// entry, or a policy entry limited to other scopes); `reason` says which and where
    /// sources come from.
    case notProvided(id: String, reason: String)
    /// A required secret whose configured source does not exist. `detail` names the source,
    /// where it was configured and what is wrong:
    /// `file "/p/npm" does not exist (from --secret "id=npm,src=npm")`.
    case sourceMissing(id: String, detail: String)
    /// The value is larger than the limit (BuildKit's 500 KB). `bytes` is the size seen,
    /// nil when the source could not say (a pipe that kept going past the limit).
    case tooLarge(id: String, source: String, bytes: Int?, limit: Int)
    /// The source exists but cannot be read (permissions, a directory, an I/O error).
    case unreadable(id: String, source: String, reason: String)

    /// The exit code `agent run-job` and `agent watch` use for this error (bad input).
    public var exitCode: Int32 { 2 }

    /// The secret id this error is about (nil for a malformed flag).
    public var secretID: String? {
        switch self {
        case .invalidFlag: return nil
        case .notProvided(let id, _), .sourceMissing(let id, _), .tooLarge(let id, _, _, _),
             .unreadable(let id, _, _):
            return id
        }
    }

    public var description: String {
        switch self {
        case .invalidFlag(let flag, let reason):
            return "--secret \(SecretError.quote(flag)): \(reason)"
        case .notProvided(let id, let reason):
            return "secret \(SecretError.quote(id)) is required but not provided: \(reason)"
        case .sourceMissing(let id, let detail):
            return "secret \(SecretError.quote(id)) is required but its source is missing: \(detail)"
        case .tooLarge(let id, let source, let bytes, let limit):
            let size = bytes.map { "\($0) bytes" } ?? "more than \(limit) bytes"
            return "secret \(SecretError.quote(id)): \(source) is \(size); secrets are limited to \(limit) bytes"
        case .unreadable(let id, let source, let reason):
            return "secret \(SecretError.quote(id)): cannot read \(source): \(reason)"
        }
    }
}

extension SecretError {
    /// Quotes user text for an error message the way the rest of the agent does (`"npm"`),
    /// escaping quotes and control characters so a message stays on one line.
    static func quote(_ text: String) -> String {
        jsonQuoted(text)
    }
}
