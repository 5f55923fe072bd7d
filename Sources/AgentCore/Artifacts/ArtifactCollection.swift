import AgentSupport
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// Why collecting an artifact rule failed. Each case names the rule, and the pattern,
/// path or budget involved.
public enum ArtifactError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The rule's name cannot be a folder name under `results/artifacts/`.
    case invalidName(rule: String, reason: String)
    case invalidPattern(rule: String, GlobPatternError)
    /// The job's artifacts would need more than the budget; the rule's files are removed.
    case budgetExceeded(rule: String, budget: UInt64, needed: UInt64)
    /// A `required: true` rule matched no file.
    case nothingMatched(rule: String, patterns: [String])
    /// A read or write failed; `path` is workspace- or artifacts-relative.
    case io(rule: String, path: String, operation: String, errno: Int32)
    /// The artifact scanner (e.g. leaked-secret detection) refused a file; it was removed.
    case rejected(rule: String, path: String, reason: String)
    /// A file's path or a symlink's target (`what`: `name`, `symlink target`) holds a
    /// secret; nothing of it was written. `path` shows the secret as `***`.
    case refusedName(rule: String, path: String, what: String, reason: String)

    public var description: String {
        switch self {
        case .invalidName(let rule, let reason):
            return "artifact \"\(rule)\": invalid name: \(reason)"
        case .invalidPattern(let rule, let error):
            return "artifact \"\(rule)\": \(error)"
        case .budgetExceeded(let rule, let budget, let needed):
            return "artifact \"\(rule)\": the artifact budget of \(ArtifactByteCount.format(budget)) (\(budget) bytes) is exceeded: "
                + "the job's artifacts up to this rule need \(needed) bytes; nothing of \"\(rule)\" was kept"
        case .nothingMatched(let rule, let patterns):
            return "artifact \"\(rule)\" is required but no file matched \(patterns.map { "\"\($0)\"" }.joined(separator: ", "))"
        case .io(let rule, let path, let operation, let err):
            return "artifact \"\(rule)\": \(path): \(operation) failed: \(String(cString: strerror(err)))"
        case .rejected(let rule, let path, let reason):
            return "artifact \"\(rule)\": \(path) was not kept: \(reason)"
        case .refusedName(let rule, let path, let what, let reason):
            return "artifact \"\(rule)\": \(path) was not kept: its \(what) \(reason)"
        }
    }
}

/// What a scanner says about one copied artifact file.
public enum ArtifactScanVerdict: Sendable, Equatable {
    case clean
    /// Keep the file; record a warning (must not contain the secret itself).
    case warning(String)
    /// Delete the copy and fail the rule with this reason (must not contain the secret itself).
    case reject(String)
}

/// Inspects each copied artifact file, e.g. for leaked secret values. Implemented by the
/// secrets code; the collector calls it once per regular file after the copy is complete.
public protocol ArtifactScanner: Sendable {
    /// `path` is relative to `results/artifacts/` (e.g. `dist/dist/app`); `fileDescriptor`
    /// is open for reading on the copy (read it with `pread` or from offset 0; the
    /// collector closes it). A thrown error counts as `.reject` with its description.
    func scan(artifact: String, path: String, fileDescriptor: Int32) throws -> ArtifactScanVerdict

    /// Checks a name the collector is about to write: a path relative to
    /// `results/artifacts/` (every component at once, so a value spanning a `/` is seen too),
    /// a rule name or a symlink's target. Called before anything of the file is created, so
    /// a refused name never reaches the artifacts tree, `manifest.json` or `SHA256SUMS`.
    func checkName(_ name: String) -> ArtifactNameRejection?
}

extension ArtifactScanner {
    /// Scanners that look at contents only accept every name.
    public func checkName(_ name: String) -> ArtifactNameRejection? { nil }
}

/// Why a name must not be written (it holds a secret), without the secret itself.
public struct ArtifactNameRejection: Sendable, Equatable {
    /// The name with the offending part replaced by `***`, for messages.
    public var shown: String
    /// E.g. `it contains secret "npm"`.
    public var reason: String

    public init(shown: String, reason: String) {
        self.shown = shown
        self.reason = reason
    }
}

/// The outcome of collecting a job's artifacts, for status.json and the job's result.
/// A failed rule does not stop the others: everything that can be kept is kept.
public struct ArtifactCollection: Sendable, Equatable, Encodable {
    /// What was kept (also written to `manifest.json`).
    public var manifest: ArtifactManifest
    /// Regular files kept, and their total size.
    public var files: Int
    public var bytes: UInt64
    /// Rules not run because of their `when` and the job's outcome.
    public var skippedRules: [String]
    public var warnings: [String]
    public var errors: [ArtifactError]

    public init(manifest: ArtifactManifest = ArtifactManifest(), files: Int = 0, bytes: UInt64 = 0,
                skippedRules: [String] = [], warnings: [String] = [], errors: [ArtifactError] = []) {
        self.manifest = manifest
        self.files = files
        self.bytes = bytes
        self.skippedRules = skippedRules
        self.warnings = warnings
        self.errors = errors
    }

    /// False when any rule failed: the job then fails.
    public var succeeded: Bool { errors.isEmpty }

    private enum CodingKeys: String, CodingKey { case files, bytes, skippedRules = "skipped_rules", warnings, errors }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(files, forKey: .files)
        try c.encode(bytes, forKey: .bytes)
        try c.encode(skippedRules, forKey: .skippedRules)
        try c.encode(warnings, forKey: .warnings)
        try c.encode(errors.map(\.description), forKey: .errors)
    }
}

/// Human-readable sizes for messages (`1 GiB`, `512 MiB`, `3.5 KiB`).
enum ArtifactByteCount {
    static func format(_ bytes: UInt64) -> String {
        let units = ["bytes", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        if unit == 0 { return "\(bytes) bytes" }
        return value == value.rounded() ? "\(Int(value)) \(units[unit])" : fixedPoint(value, decimals: 1) + " " + units[unit]
    }
}
