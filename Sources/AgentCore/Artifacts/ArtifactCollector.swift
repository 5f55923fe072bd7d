import AgentSupport
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// Copies a job's artifacts out of its workspace into `results/artifacts/<name>/`,
/// keeping relative paths and permission bits, and writes `manifest.json` and
/// `SHA256SUMS` next to the rule folders.
///
/// Safety: the workspace is read through directory fds with `O_NOFOLLOW` on every
/// component, and the output is created with `mkdirat`/`O_EXCL|O_NOFOLLOW` below the
/// artifacts folder only. Symlinks are never followed: one whose target stays inside the
/// workspace is recreated with the same (relative) target, one pointing outside (or to
/// an absolute path) is skipped with a warning. Set-id and sticky bits are dropped.
public struct ArtifactCollector: Sendable {
    /// The workspace as the host sees it (e.g. the merged view of the job's workspace).
    public var workspace: String
    /// `results/artifacts`; created if missing (its parent must exist).
    public var outputDirectory: String
    /// Bytes all rules of the job may keep together (default 1 GiB).
    public var budget: UInt64
    public var scanner: (any ArtifactScanner)?
    public var strategy: ArtifactCopyStrategy

    public static let defaultBudget: UInt64 = 1 << 30
    /// Names that would collide with the files the collector writes itself.
    static let reservedNames: Set<String> = ["manifest.json", "SHA256SUMS"]

    public init(workspace: String, outputDirectory: String, budget: UInt64 = ArtifactCollector.defaultBudget,
                scanner: (any ArtifactScanner)? = nil, strategy: ArtifactCopyStrategy = .readWrite) {
        self.workspace = workspace
        self.outputDirectory = outputDirectory
        self.budget = budget
        self.scanner = scanner
        self.strategy = strategy
    }

    /// Collects the rules whose `when` fits the job's outcome, in order, on a thread of its
    /// own (it is blocking file I/O; a gigabyte takes seconds). Never throws: every problem
    /// is an error or warning in the result (a failed rule keeps no files).
    public func collect(_ rules: [ArtifactRule], jobSucceeded: Bool) async -> ArtifactCollection {
        await withCheckedContinuation { continuation in
            do {
                try startDetachedThread {
                    continuation.resume(returning: self.collectSynchronously(rules, jobSucceeded: jobSucceeded))
                }
            } catch {
                // No thread to spare: do the work here rather than not at all.
                continuation.resume(returning: self.collectSynchronously(rules, jobSucceeded: jobSucceeded))
            }
        }
    }

    /// `collect` on the calling thread.
    public func collectSynchronously(_ rules: [ArtifactRule], jobSucceeded: Bool) -> ArtifactCollection {
        var result = ArtifactCollection()
        let active = rules.filter { rule in
            let run = rule.when == .always || (rule.when == .onSuccess) == jobSucceeded
            if !run { result.skippedRules.append(rule.name) }
            return run
        }
        guard !active.isEmpty else { return result }

        let rootfd = open(workspace, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard rootfd >= 0 else {
            result.errors.append(.io(rule: active[0].name, path: workspace, operation: "open workspace", errno: errno))
            return result
        }
        defer { close(rootfd) }
        if mkdir(outputDirectory, 0o755) != 0 && errno != EEXIST {
            result.errors.append(.io(rule: active[0].name, path: outputDirectory, operation: "mkdir", errno: errno))
            return result
        }
        let outfd = open(outputDirectory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard outfd >= 0 else {
            result.errors.append(.io(rule: active[0].name, path: outputDirectory, operation: "open", errno: errno))
            return result
        }
        defer { close(outfd) }

        let copier = ArtifactCopier(strategy: strategy)
        var seen: Set<String> = []
        for rule in active {
            if let problem = Self.nameProblem(rule.name) ?? (seen.contains(rule.name) ? "used by an earlier rule" : nil) {
                result.errors.append(.invalidName(rule: rule.name, reason: problem))
                continue
            }
            // The rule name is the first component of every path written for it.
            if let refusal = scanner?.checkName(rule.name) {
                result.errors.append(.invalidName(rule: refusal.shown, reason: "it " + refusal.reason))
                continue
            }
            seen.insert(rule.name)
            collect(rule, rootfd: rootfd, outfd: outfd, copier: copier, into: &result)
        }
        do {
            try result.manifest.write(to: outputDirectory)
        } catch {
            result.errors.append(.io(rule: active[0].name, path: outputDirectory + "/manifest.json",
                                     operation: "write manifest", errno: (error as? ReportFileError)?.errno ?? EIO))
        }
        return result
    }

    /// Why `name` cannot be a rule name (a single folder name), or nil.
    public static func nameProblem(_ name: String) -> String? {
        if name.isEmpty || name.utf8.count > 128 { return "must be 1 to 128 characters" }
        if name == "." || name == ".." { return "must not be \".\" or \"..\"" }
        if reservedNames.contains(name) { return "\"\(name)\" is reserved for the collector's own file" }
        if !name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }) {
            return "may contain only letters, digits, \".\", \"_\" and \"-\""
        }
        return nil
    }

    private func collect(_ rule: ArtifactRule, rootfd: Int32, outfd: Int32, copier: ArtifactCopier,
                         into result: inout ArtifactCollection) {
        let includes: [GlobPattern]
        let excludes: [GlobPattern]
        do {
            includes = try rule.paths.map { (p: String) throws(GlobPatternError) in try GlobPattern(p) }
            excludes = try rule.exclude.map { (p: String) throws(GlobPatternError) in try GlobPattern(p) }
        } catch {
            result.errors.append(.invalidPattern(rule: rule.name, error))
            return
        }
        var scan = WorkspaceScan(rootfd: rootfd)
        let candidates: [ArtifactCandidate]
        do {
            candidates = try scan.find(includes: includes, excludes: excludes)
        } catch {
            result.warnings += scan.warnings
            result.errors.append(.io(rule: rule.name, path: error.path, operation: error.operation, errno: error.errno))
            return
        }
        result.warnings += scan.warnings
        guard !candidates.isEmpty else {
            if rule.required {
                result.errors.append(.nothingMatched(rule: rule.name, patterns: rule.paths))
            } else {
                result.warnings.append("artifact \"\(rule.name)\": no file matched \(rule.paths.map { "\"\($0)\"" }.joined(separator: ", "))")
            }
            return
        }
        // Check the budget before copying a byte, so a rule over it leaves nothing behind.
        let needed = candidates.reduce(result.bytes) { total, c in
            if case .file(let size, _) = c.kind { return total + size }
            return total
        }
        guard needed <= budget else {
            result.errors.append(.budgetExceeded(rule: rule.name, budget: budget, needed: needed))
            return
        }
        var copy = RuleCopy(rule: rule.name, rootfd: rootfd, outfd: outfd, copier: copier, scanner: scanner,
                            remaining: budget - result.bytes)
        do {
            let files = try copy.run(candidates)
            result.manifest.artifacts.append(ArtifactManifest.Artifact(name: rule.name, files: files))
            result.files += copy.fileCount
            result.bytes += copy.byteCount
            result.warnings += copy.warnings
            result.errors += copy.errors
        } catch {
            // Files grew while copying, a write failed, or the scanner refused a file: keep nothing.
            ArtifactFS.removeTree(outfd, rule.name)
            result.warnings += copy.warnings
            if error is ArtifactCopier.LimitExceeded {
                result.errors.append(.budgetExceeded(rule: rule.name, budget: budget, needed: result.bytes + copy.byteCount + 1))
            } else if let e = error as? ArtifactError {
                result.errors.append(e)
            } else if let e = error as? ArtifactSystemCallError {
                result.errors.append(.io(rule: rule.name, path: e.path, operation: e.operation, errno: e.errno))
            } else {
                result.errors.append(.io(rule: rule.name, path: rule.name, operation: "\(error)", errno: EIO))
            }
        }
    }
}
