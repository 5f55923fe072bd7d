#if canImport(Glibc)
import Glibc
#endif
import SandboxPolicy

/// The secret values of one job, resolved before any step runs and held in memory only:
/// nothing here ever writes a value to disk, and `description`/`dump` show ids, not values.
///
/// The runner asks `value(for:)` for each secret a step mounts (nil: skip the mount, as
/// BuildKit does for a secret that is not required), builds one `SecretMatcher` per job
/// with `makeMatcher()`, and shows `warnings` at job start (status.json, progress).
public struct SecretStore: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// BuildKit's limit on a secret's size.
    public static let defaultMaxBytes = 500 * 1024

    private var values: [String: [UInt8]]
    /// Human-readable warnings, without values: secrets too short to redact, optional
    /// secrets whose configured source is missing.
    public private(set) var warnings: [String]

    /// A store with known values (tests, `agent debug redact`). Adds the short-value warnings.
    public init(values: [String: [UInt8]], warnings: [String] = []) {
        self.values = values
        self.warnings = warnings + Self.shortValueWarnings(values)
    }

    /// The value of secret `id`, or nil when it has none (a mount of it is skipped).
    public func value(for id: String) -> [UInt8]? { values[id] }

    /// Ids of the secrets that have a value, sorted.
    public var ids: [String] { values.keys.sorted() }

    public var isEmpty: Bool { values.isEmpty }

    /// The matcher for this job's redactors and the artifact scanner. Build it once per job.
    public func makeMatcher() -> SecretMatcher {
        SecretMatcher(secrets: ids.map { (id: $0, value: values[$0]!) })
    }

    public var description: String { "SecretStore(ids: \(ids))" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: ["ids": ids], displayStyle: .struct) }

    /// Resolves every secret the job can use: the ids in the job's `secrets`, the ids given
    /// by `cliSecrets`, and the ids any step mounts. Values come from the operator only; the
    /// job file is untrusted and names ids, never sources. For each id the first of these wins:
    ///
    /// 1. a `--secret` flag (the last one for that id): a relative `src` resolves against
    ///    `cwd`; `id=x` alone keeps BuildKit's meaning (variable `x`, else file `x` in `cwd`),
    ///    since the operator wrote it;
    /// 2. the agent policy's `secrets` entry (`policySecrets`), when it is not limited to
    ///    scopes or `job.cacheScope` (the granted scope) is one of them.
    ///
    /// Anything else is "not provided": there is deliberately no look-up in the agent's
    /// environment or beside the job file (BuildKit's default), since a hostile job would
    /// use it to read `HOME`'s files or `AWS_*` variables. A secret is required when the job
    /// marks it `required` or any step mounts it with `required=true`. A required secret
    /// without a value throws, naming the id and where sources come from; an optional one
    /// is left out (a mount of it is skipped) and a configured-but-missing source or a
    /// policy secret of another scope is a warning. Values over `maxBytes` always throw.
    public static func resolve(job: JobSpec, cliSecrets: [SecretSourceFlag],
                               policySecrets: [String: AgentPolicy.Secret] = [:], environment: [String: String],
                               cwd: String, maxBytes: Int = defaultMaxBytes) throws -> SecretStore {
        var flags: [String: SecretSourceFlag] = [:]
        for flag in cliSecrets { flags[flag.id] = flag }  // later flags override earlier ones
        var requiredIDs = Set(job.secrets.filter { $0.value.required }.keys)
        var ids = Set(job.secrets.keys).union(flags.keys)
        for step in job.steps {
            for case .secret(let mount) in step.mounts {
                ids.insert(mount.id)
                if mount.required { requiredIDs.insert(mount.id) }
            }
        }

        let reader = SourceReader(environment: environment, maxBytes: maxBytes)
        var values: [String: [UInt8]] = [:]
        var warnings: [String] = []
        for id in ids.sorted() {
            let required = requiredIDs.contains(id)
            if let flag = flags[id] {
                let origin = "(from --secret \(SecretError.quote(flag.text)))"
                let found: Lookup
                switch flag.source {
                case .file(let path): found = try reader.read(id: id, .file(join(cwd, path)), origin: origin)
                case .env(let name): found = try reader.read(id: id, .env(name), origin: origin)
                case .automatic: found = try reader.automatic(id: id, directory: cwd, origin: origin)
                }
                try accept(found, id: id, required: required, origin: origin, into: &values, warnings: &warnings)
            } else if let secret = policySecrets[id] {
                let origin = "(from the agent policy's secrets.\(id))"
                guard secret.isProvided(toScope: job.cacheScope) else {
                    let reason = "not provided for scope \(SecretError.quote(job.cacheScope)): the agent policy's "
                        + "secrets.\(id) is limited to scopes \((secret.scopes ?? []).map(SecretError.quote).joined(separator: ", "))"
                    if required { throw SecretError.notProvided(id: id, reason: reason) }
                    warnings.append("secret \(SecretError.quote(id)) is \(reason); steps that mount it without required=true run without it")
                    continue
                }
                let source: SecretSource = switch secret.source {
                case .file(let path): .file(path)
                case .env(let name): .env(name)
                }
                let found = try reader.read(id: id, source, origin: origin)
                try accept(found, id: id, required: required, origin: origin, into: &values, warnings: &warnings)
            } else if required {
                // Nobody provided it. Optional: leaving it out is BuildKit's normal case, no warning.
                throw SecretError.notProvided(id: id, reason: "no --secret flag and no \"secrets\" entry in the agent policy "
                    + "(the operator provides secrets: --secret id=\(id),src=FILE on run-job/watch, or \"secrets\" in the agent policy)")
            }
        }
        return SecretStore(values: values, warnings: warnings)
    }

    private static func accept(_ found: Lookup, id: String, required: Bool, origin: String,
                               into values: inout [String: [UInt8]], warnings: inout [String]) throws {
        switch found {
        case .found(let value):
            values[id] = value
        case .missing(let places):
            let detail = places.joined(separator: " and ") + " " + origin
            if required { throw SecretError.sourceMissing(id: id, detail: detail) }
            warnings.append("secret \(SecretError.quote(id)): \(detail); steps that mount it without required=true run without it")
        }
    }

    /// Warnings for values too short to redact (see `SecretPatterns.minimumLength`).
    static func shortValueWarnings(_ values: [String: [UInt8]]) -> [String] {
        values.keys.sorted().compactMap { id in
            let value = SecretPatterns.trimmingTrailingNewlines(values[id]!)
            guard value.count < SecretPatterns.minimumLength else { return nil }
            let what = value.isEmpty ? "is empty" : "is shorter than \(SecretPatterns.minimumLength) bytes"
            return "secret \(SecretError.quote(id)) \(what): it cannot be redacted safely and is not masked in output"
        }
    }

    private static func join(_ directory: String, _ path: String) -> String {
        if path.hasPrefix("/") { return path }
        return directory.hasSuffix("/") ? directory + path : directory + "/" + path
    }
}
