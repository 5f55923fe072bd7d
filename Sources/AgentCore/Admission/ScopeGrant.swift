import AgentSupport

/// The cache scope a job runs in is the operator's grant, never the job's choice.
///
/// Scopes keep caches and volumes of untrusted jobs (forks) apart from trusted ones, and
/// the policy's scope-limited secrets hang on them; the job file comes from the repository
/// under test, so a scope it names would let a fork write into the cache trusted jobs
/// read. The operator grants one scope per `run-job`/`watch` (`--cache-scope`, default
/// `default`). A job may still say `"cache": {"scope": ...}`, as documentation or to fail
/// fast when run in the wrong place, but only with the granted value.
public enum ScopeGrant {
    /// The scope granted when the operator names none.
    public static let defaultScope = "default"

    /// Returns the scope `job` runs in: `grant`. Throws a `JobValidationError` (exit 2)
    /// naming `file`, the JSON path `cache.scope`, the value and where the grant came from
    /// when the job asks for another scope.
    ///
    /// - Parameters:
    ///   - grant: the operator's scope (already checked with `isValidScope`).
    ///   - file: how errors name the job file.
    ///   - grantedBy: how errors name where the grant came from (the flag, or an admission rule).
    public static func grantedCacheScope(job: JobSpec, grant: String, file: String? = nil,
                                         grantedBy: String = "--cache-scope") throws -> String {
        if let asked = job.requestedCacheScope, asked != grant {
            throw JobValidationError(file: file, path: "cache.scope", message:
                "\(jsonQuoted(asked)) is not this job's cache scope (\(jsonQuoted(grant)), set by \(grantedBy))")
        }
        return grant
    }

    /// `job` with `cacheScope` set to the grant (see `grantedCacheScope`).
    public static func apply(_ grant: String, to job: JobSpec, file: String? = nil,
                             grantedBy: String = "--cache-scope") throws -> JobSpec {
        var job = job
        job.cacheScope = try grantedCacheScope(job: job, grant: grant, file: file, grantedBy: grantedBy)
        return job
    }

    /// Whether `scope` can be granted: a volume-name-like `[A-Za-z0-9][A-Za-z0-9._-]*` of at
    /// most 128 bytes. Every such name is also a valid cache scope, and starting with a
    /// letter or digit keeps it apart from the state folder's own dot-entries.
    public static func isValidScope(_ scope: String) -> Bool {
        VolumeName.isValid(scope)
    }
}
