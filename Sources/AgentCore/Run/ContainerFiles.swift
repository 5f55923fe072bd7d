import CAgentSandbox
import AgentSupport
import FoundationEssentials
import Glibc
import SandboxPolicy

/// Reads test reports out of a still-alive container without ever leaving it, one at a
/// time and within the policy's per-step caps.
///
/// Matching uses the artifact collector's glob engine (`GlobSearch`: one `O_NOFOLLOW`
/// component at a time from the container's root, so a symlink planted by the job is never
/// followed). Each selected file is then opened relative to the root descriptor with
/// `openat2(RESOLVE_IN_ROOT)`, so even a path swapped after the scan resolves inside the
/// container.
///
/// Bounds (`reports.*` in the policy): at most `maxFiles` files and `maxTotalBytes` bytes
/// are parsed per step, at most `maxCases` test cases are kept (the rest only counted), a file over `maxFileBytes` becomes a MalformedReport case, and a
/// file whose inode was already read (a hard link, which costs the job nothing) is not
/// read again. Each report is streamed through libxml2 and only its parsed suites (with
/// clipped texts) are kept, so the agent holds one report's parser state at a time.
enum ContainerFiles {
    /// What one step's reports came to.
    struct Reports: Sendable {
        var parsed: [JUnitParsedReport] = []
        /// Files matched (before the caps).
        var matched = 0
        /// Why some matched files were not read (for warnings).
        var skipped: [String] = []
    }

    /// Expands `patterns` (absolute inside the container, or relative to `base`) in the
    /// container whose root is `rootFD`; `rootPath` is the same root as a path
    /// (`/proc/PID/root`). Throws a `GlobPatternError` for a pattern with `..`.
    static func readReports(rootFD: Int32, rootPath: String, patterns: [String], base: String,
                            limits: AgentPolicy.ReportLimits, redact: @escaping (String) -> String) throws -> Reports {
        let relative = patterns.map { p in
            String((p.hasPrefix("/") ? p : base + "/" + p).drop { $0 == "/" })
        }
        let paths = try GlobSearch.regularFiles(in: rootPath, matching: relative)
        var out = Reports(matched: paths.count)
        var seen = Set<[UInt64]>()
        var totalBytes: UInt64 = 0
        var overCount = 0, overBytes = 0, links = 0
        var caseBudget = Int(clamping: limits.maxCases), omitted = 0
        for path in paths {
            if UInt64(out.parsed.count) >= limits.maxFiles { overCount += 1; continue }
            let fd = agent_resolve_open_in_root(rootFD, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            // The same inode under another name (a hard link) is read once per step.
            guard seen.insert([UInt64(st.st_dev), UInt64(st.st_ino)]).inserted else { links += 1; continue }
            let name = "/" + path
            let size = UInt64(max(st.st_size, 0))
            if size > limits.maxFileBytes {
                out.parsed.append(JUnitParser.failed(file: name, problem: "larger than \(limits.maxFileBytes) bytes (reports.maxFileBytes)"))
                continue
            }
            if totalBytes + size > limits.maxTotalBytes { overBytes += 1; continue }
            totalBytes += size
            let report = JUnitParser.parse(fd: fd, file: name, redact: redact, caseBudget: caseBudget)
            let kept = report.suites.reduce(0) { $0 + $1.testCases.count }
            caseBudget = max(0, caseBudget - kept)
            omitted += report.suites.reduce(0) { $0 + $1.omitted.tests }
            out.parsed.append(report)
        }
        if overCount > 0 { out.skipped.append("\(overCount) reports not read: more than \(limits.maxFiles) files (reports.maxFiles)") }
        if overBytes > 0 { out.skipped.append("\(overBytes) reports not read: more than \(limits.maxTotalBytes) bytes in all (reports.maxTotalBytes)") }
        if omitted > 0 { out.skipped.append("\(omitted) test cases counted but not kept: more than \(limits.maxCases) in all (reports.maxCases)") }
        if links > 0 { out.skipped.append("\(links) reports not read again: hard links to a report already read") }
        return out
    }
}
