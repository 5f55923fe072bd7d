#if canImport(Glibc)
import Glibc
#endif

/// A file the patterns selected, before it is copied.
struct ArtifactCandidate: Sendable, Equatable {
    enum Kind: Sendable, Equatable {
        case file(size: UInt64, mode: UInt32)
        case symlink(target: String)
    }
    /// Workspace-relative path segments.
    var path: [String]
    var kind: Kind
    var joinedPath: String { path.joined(separator: "/") }
}

/// Finds what a rule's patterns select in a workspace, walking from a directory fd and
/// never following a symlink. Symlinks themselves are candidates: kept when their target
/// resolves inside the workspace, skipped with a warning otherwise.
struct WorkspaceScan {
    let rootfd: Int32
    private(set) var warnings: [String] = []
    private var found: [String: ArtifactCandidate] = [:]
    private var excludes: [GlobMatcher] = []

    init(rootfd: Int32) {
        self.rootfd = rootfd
    }

    /// Regular files and kept symlinks matched by `includes` and not by `excludes`, sorted by path.
    mutating func find(includes: [GlobPattern], excludes: [GlobPattern]) throws(ArtifactSystemCallError) -> [ArtifactCandidate] {
        found = [:]
        self.excludes = excludes.map { GlobMatcher($0, matchDotfiles: true) }
        for pattern in includes {
            try walk(pattern)
        }
        return found.values.sorted { $0.joinedPath < $1.joinedPath }
    }

    private mutating func walk(_ pattern: GlobPattern) throws(ArtifactSystemCallError) {
        let matcher = GlobMatcher(pattern, matchDotfiles: false)
        let prefix = pattern.literalPrefix
        let parent = pattern.isLiteral ? Array(prefix.dropLast()) : prefix
        let dirfd: Int32
        do {
            dirfd = try ArtifactFS.openDirectory(rootfd, parent, display: parent.joined(separator: "/"))
        } catch {
            switch error.errno {
            case ENOENT, ENOTDIR: return  // nothing there: the pattern matches nothing
            case ELOOP:
                warnings.append("pattern \"\(pattern)\": \(parent.joined(separator: "/")) goes through a symlink, which is not followed")
                return
            default: throw error
            }
        }
        defer { close(dirfd) }
        if pattern.isLiteral {
            guard let name = prefix.last else {
                try addTree(dirfd, path: [])  // "." : the whole workspace
                return
            }
            guard let st = ArtifactFS.lstat(dirfd, name) else { return }
            try add(dirfd, name: name, path: prefix, st: st)
        } else {
            try search(dirfd, path: parent, state: matcher.state(after: parent.count), matcher: matcher)
        }
    }

    /// Walks a folder below a pattern's literal prefix, pruning where no match can be.
    /// Iterative (`TreeWalk`): any depth, a bounded number of open folders.
    private mutating func search(_ dirfd: Int32, path: [String], state: GlobMatcher.State,
                                 matcher: GlobMatcher) throws(ArtifactSystemCallError) {
        var names = path          // the current folder's path (grows and shrinks with the walk)
        var states = [state]      // matcher state of the folder at each depth
        var failure: ArtifactSystemCallError?
        var scan = self
        let walk = TreeWalk(visit: { parent, name, st, depth in
            guard failure == nil else { return false }
            names.removeSubrange((path.count + depth - 1)...)
            states.removeSubrange(depth...)
            let next = matcher.step(states[depth - 1], name)
            if next.isEmpty { return false }
            // The full path is built only when needed: copying it at every level of a deep
            // chain would cost depth² time.
            if scan.hasExcludes && scan.isExcluded(names + [name]) { return false }
            if matcher.isMatch(next) {
                do throws(ArtifactSystemCallError) { try scan.add(parent, name: name, path: names + [name], st: st) } catch { failure = error }
                return false
            }
            guard ArtifactFS.isDirectory(st), matcher.canContinue(next) else { return false }
            names.append(name)
            states.append(next)
            return true
        }, open: { parent, name, _ in
            let fd = TreeWalk.openDirectory(parent, name)
            if fd < 0 { failure = failure ?? ArtifactSystemCallError(operation: "open directory", path: (names + [name]).joined(separator: "/"), errno: errno) }
            return fd
        })
        walk.runBelow(dirfd)
        self = scan
        if let failure { throw failure }
    }

    /// Adds one matched entry: a file, a symlink, or a directory with everything under it.
    private mutating func add(_ dirfd: Int32, name: String, path: [String], st: stat) throws(ArtifactSystemCallError) {
        if isExcluded(path) { return }
        let joined = path.joined(separator: "/")
        if ArtifactFS.isRegular(st) || ArtifactFS.isSymlink(st) {
            addLeaf(dirfd, name: name, path: path, st: st)
        } else if ArtifactFS.isDirectory(st) {
            let child = try ArtifactFS.openDirectory(dirfd, [name], display: joined)
            defer { close(child) }
            try addTree(child, path: path)
        } else {
            warnings.append("\(joined): not a regular file, directory or symlink; skipped")
        }
    }

    /// A regular file or a symlink (kept when it resolves inside the workspace).
    private mutating func addLeaf(_ dirfd: Int32, name: String, path: [String], st: stat) {
        let joined = path.joined(separator: "/")
        if ArtifactFS.isRegular(st) {
            found[joined] = ArtifactCandidate(path: path, kind: .file(size: UInt64(st.st_size), mode: UInt32(st.st_mode) & 0o777))
        } else if let target = ArtifactFS.readLink(dirfd, name) {
            if ArtifactFS.resolvesInside(rootfd: rootfd, linkDir: Array(path.dropLast()), target: target) {
                found[joined] = ArtifactCandidate(path: path, kind: .symlink(target: target))
            } else {
                warnings.append("\(joined): symlink to \"\(target)\" points outside the workspace; skipped")
            }
        }
    }

    /// Everything below the folder open at `dirfd` (at `path`), iteratively.
    private mutating func addTree(_ dirfd: Int32, path: [String]) throws(ArtifactSystemCallError) {
        var names = path
        var failure: ArtifactSystemCallError?
        var scan = self
        let walk = TreeWalk(visit: { parent, name, st, depth in
            guard failure == nil else { return false }
            names.removeSubrange((path.count + depth - 1)...)
            if scan.hasExcludes && scan.isExcluded(names + [name]) { return false }
            if ArtifactFS.isDirectory(st) {
                names.append(name)
                return true
            }
            let childPath = names + [name]
            if ArtifactFS.isRegular(st) || ArtifactFS.isSymlink(st) {
                scan.addLeaf(parent, name: name, path: childPath, st: st)
            } else {
                scan.warnings.append("\(childPath.joined(separator: "/")): not a regular file, directory or symlink; skipped")
            }
            return false
        }, open: { parent, name, _ in
            let fd = TreeWalk.openDirectory(parent, name)
            if fd < 0 { failure = failure ?? ArtifactSystemCallError(operation: "open directory", path: (names + [name]).joined(separator: "/"), errno: errno) }
            return fd
        })
        walk.runBelow(dirfd)
        self = scan
        if let failure { throw failure }
    }

    /// `lstat` of a listed entry; one that cannot be examined (e.g. a name that is not
    /// valid UTF-8, which Swift strings cannot carry back to the kernel) is a warning.
    private mutating func examine(_ dirfd: Int32, _ path: [String]) -> stat? {
        guard let name = path.last, let st = ArtifactFS.lstat(dirfd, name) else {
            warnings.append("\(path.joined(separator: "/")): cannot be examined (\(String(cString: strerror(errno)))); skipped")
            return nil
        }
        return st
    }

    private var hasExcludes: Bool { !excludes.isEmpty }

    private func isExcluded(_ path: [String]) -> Bool {
        excludes.contains { $0.matchesPathOrParent(path) }
    }
}

/// Finding files by glob outside artifact collection, e.g. a test step's JUnit reports in
/// a folder copied out of its container. Same rules as artifacts: no symlink is followed
/// (symlinks are not returned), dotfiles need an explicit pattern.
public enum GlobSearch {
    /// Workspace-relative paths of the regular files under `directory` that `patterns`
    /// select and `excluding` does not, sorted. Throws `GlobPatternError` for a bad
    /// pattern and `ReportFileError` when `directory` cannot be read.
    public static func regularFiles(in directory: String, matching patterns: [String],
                                    excluding: [String] = []) throws -> [String] {
        let includes = try patterns.map { try GlobPattern($0) }
        let excludes = try excluding.map { try GlobPattern($0) }
        let rootfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard rootfd >= 0 else { throw ReportFileError(path: directory, operation: "open", errno: errno) }
        defer { close(rootfd) }
        var scan = WorkspaceScan(rootfd: rootfd)
        do {
            return try scan.find(includes: includes, excludes: excludes).compactMap { candidate in
                if case .file = candidate.kind { return candidate.joinedPath }
                return nil
            }
        } catch {
            throw ReportFileError(path: directory + "/" + error.path, operation: error.operation, errno: error.errno)
        }
    }
}
