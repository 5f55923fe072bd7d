#if canImport(Glibc)
import Glibc
#endif

/// Copies one rule's candidates into `<artifacts>/<rule>/`, hashing each file, and asks the
/// scanner about each copy. Throws when the rule must keep nothing (the caller removes
/// its folder); a file the scanner rejects is removed alone and reported in `errors`.
struct RuleCopy {
    let rule: String
    let rootfd: Int32
    let outfd: Int32
    let copier: ArtifactCopier
    let scanner: (any ArtifactScanner)?
    /// Budget left for this rule.
    let remaining: UInt64

    private(set) var fileCount = 0
    private(set) var byteCount: UInt64 = 0
    private(set) var warnings: [String] = []
    private(set) var errors: [ArtifactError] = []

    // Candidates come sorted, so consecutive files share folders: keep the last pair open.
    private var sourceDir: (path: ArraySlice<String>, fd: Int32)?
    private var targetDir: (path: ArraySlice<String>, fd: Int32)?

    init(rule: String, rootfd: Int32, outfd: Int32, copier: ArtifactCopier, scanner: (any ArtifactScanner)?,
         remaining: UInt64) {
        self.rule = rule
        self.rootfd = rootfd
        self.outfd = outfd
        self.copier = copier
        self.scanner = scanner
        self.remaining = remaining
    }

    mutating func run(_ candidates: [ArtifactCandidate]) throws -> [ArtifactManifest.File] {
        let rulefd = try ArtifactFS.makeDirectories(outfd, [rule], display: rule)
        defer {
            close(rulefd)
            if let s = sourceDir { close(s.fd) }
            if let t = targetDir { close(t.fd) }
            sourceDir = nil
            targetDir = nil
        }
        var files: [ArtifactManifest.File] = []
        for candidate in candidates {
            let parent = candidate.path.dropLast()
            let name = candidate.path.last!
            let display = candidate.joinedPath
            let manifestPath = rule + "/" + display
            // Names are checked before any folder or file of the candidate is created.
            if let refusal = refusal(manifestPath, candidate.kind) {
                errors.append(refusal)
                continue
            }
            let dst = try targetFolder(parent, rulefd: rulefd, display: manifestPath)
            switch candidate.kind {
            case .symlink(let target):
                guard symlinkat(target, dst, name) == 0 else {
                    throw ArtifactSystemCallError(operation: "symlink", path: manifestPath, errno: errno)
                }
                files.append(ArtifactManifest.File(path: manifestPath, symlink: target))
            case .file(_, let mode):
                let src = try sourceFolder(parent, display: display)
                if let file = try copyFile(name, from: src, to: dst, mode: mode, display: display, manifestPath: manifestPath) {
                    files.append(file)
                }
            }
        }
        return files
    }

    /// Why a candidate must not be written because its path, or its target for a symlink,
    /// holds a secret; nil when the scanner accepts both.
    private func refusal(_ manifestPath: String, _ kind: ArtifactCandidate.Kind) -> ArtifactError? {
        guard let scanner else { return nil }
        if let r = scanner.checkName(manifestPath) {
            return .refusedName(rule: rule, path: r.shown, what: "name", reason: r.reason)
        }
        // The path itself passed above, so it is shown as it is.
        if case .symlink(let target) = kind, let r = scanner.checkName(target) {
            return .refusedName(rule: rule, path: manifestPath, what: "symlink target", reason: r.reason)
        }
        return nil
    }

    private mutating func copyFile(_ name: String, from src: Int32, to dst: Int32, mode: UInt32,
                                   display: String, manifestPath: String) throws -> ArtifactManifest.File? {
        // O_NONBLOCK: if the file was swapped for a FIFO since the scan, don't hang on it.
        let input = openat(src, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard input >= 0 else { throw ArtifactSystemCallError(operation: "open", path: display, errno: errno) }
        defer { close(input) }
        var st = stat()
        guard fstat(input, &st) == 0, ArtifactFS.isRegular(st) else {
            throw ArtifactSystemCallError(operation: "open (no longer a regular file)", path: display, errno: EINVAL)
        }
        let output = openat(dst, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard output >= 0 else { throw ArtifactSystemCallError(operation: "create", path: manifestPath, errno: errno) }
        defer { close(output) }
        let (bytes, sha256) = try copier.copy(from: input, to: output, limit: remaining - byteCount, display: display)
        guard fchmod(output, mode_t(mode & 0o777)) == 0 else {
            throw ArtifactSystemCallError(operation: "chmod", path: manifestPath, errno: errno)
        }
        if let scanner {
            lseek(output, 0, SEEK_SET)
            let verdict: ArtifactScanVerdict
            do {
                verdict = try scanner.scan(artifact: rule, path: manifestPath, fileDescriptor: output)
            } catch {
                verdict = .reject("\(error)")
            }
            switch verdict {
            case .clean: break
            case .warning(let message): warnings.append("\(manifestPath): \(message)")
            case .reject(let reason):
                unlinkat(dst, name, 0)
                errors.append(.rejected(rule: rule, path: manifestPath, reason: reason))
                return nil
            }
        }
        fileCount += 1
        byteCount += bytes
        return ArtifactManifest.File(path: manifestPath, size: bytes, mode: mode & 0o777, sha256: sha256)
    }

    private mutating func sourceFolder(_ path: ArraySlice<String>, display: String) throws(ArtifactSystemCallError) -> Int32 {
        if let s = sourceDir, s.path == path { return s.fd }
        let fd = try ArtifactFS.openDirectory(rootfd, Array(path), display: display)
        if let s = sourceDir { close(s.fd) }
        sourceDir = (path, fd)
        return fd
    }

    private mutating func targetFolder(_ path: ArraySlice<String>, rulefd: Int32, display: String) throws(ArtifactSystemCallError) -> Int32 {
        if let t = targetDir, t.path == path { return t.fd }
        let fd = try ArtifactFS.makeDirectories(rulefd, Array(path), display: display)
        if let t = targetDir { close(t.fd) }
        targetDir = (path, fd)
        return fd
    }
}
