import AgentSupport
import CAgentSys
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// A results folder that appears complete or not at all, and is never reached through a
/// symlink that someone else could have planted.
///
/// Order of operations, all relative to descriptors:
/// 1. the parent folder is opened component by component (`openat`, missing folders made
///    with `mkdirat`), with `O_NOFOLLOW` wherever the path is not the operator's own;
/// 2. the target name under it must be missing, an empty folder, or (with `--force`) a
///    folder; a symlink or a file there is an error naming it;
/// 3. a hidden working folder `.<name>.tmp-XXXXXX` is made beside it with `mkdirat` and
///    everything is written under its descriptor;
/// 4. `commit()` fsyncs the tree, renames it into place with `renameat2(RENAME_NOREPLACE)`
///    (with an existing folder: `RENAME_EXCHANGE`, then the old one is removed), and fsyncs
///    the parent so the new entry itself is durable.
public final class ResultsFolder: Sendable {
    /// Where the results will appear (for messages and `JobOutcome.resultsPath`).
    public let finalPath: String
    /// Where they are written meanwhile, as a path for messages.
    public let workingPath: String
    /// The working folder as `/proc/self/fd/N`: a path that resolves to the folder's
    /// descriptor whatever happens to the names above it. Writers that take a path (step
    /// logs, `log.txt`, artifacts) use this one.
    public var directoryPath: String { "/proc/self/fd/\(workingFD)" }

    private let parentFD: Int32
    private let workingFD: Int32
    private let finalName: String
    private let workingName: String
    private let force: Bool

    /// Why a results folder could not be made or committed; each case names the path.
    public enum Failure: Error, CustomStringConvertible, Sendable {
        case notEmpty(String)
        /// A symlink where a folder of the results path was expected (never followed).
        case symlink(String)
        /// A file (or other non-folder) at the results path or one of its parents.
        case notADirectory(String)
        case io(String, String)

        public var description: String {
            switch self {
            case .notEmpty(let p): return "results folder \(p) exists and is not empty (use --force to replace it)"
            case .symlink(let p): return "results path \(p) is a symlink; refusing to follow it"
            case .notADirectory(let p): return "results path \(p) exists and is not a folder"
            case .io(let what, let err): return "\(what): \(err)"
            }
        }

        /// Invalid input on the command line or in the folder (exit 2), as opposed to an I/O failure.
        public var isUsageError: Bool {
            if case .io = self { return false }
            return true
        }
    }

    /// Prepares a working folder beside `path`, an operator-given path (`--output`): symlinks
    /// in its parent folders are the operator's choice and are followed, the last component
    /// never is. Refuses a non-empty `path` unless `force`.
    public static func create(at path: String, force: Bool) throws -> ResultsFolder {
        let final = URL(fileURLWithPath: path).standardizedFileURL.path
        var components = final.split(separator: "/").map(String.init)
        guard let name = components.popLast() else { throw Failure.notADirectory(final) }
        let root = open("/", agent_o_path | O_DIRECTORY | O_CLOEXEC)
        guard root >= 0 else { throw Failure.io("cannot open /", ResultsFS.errnoText(errno)) }
        defer { close(root) }
        let parent = try ResultsFS.openDirectory(root, components, follow: true, shown: "/")
        return try make(parent: parent, name: name, finalPath: final, force: force)
    }

    /// Prepares a working folder for `base/relative` where `base` is trusted (followed, and
    /// created when missing) and no component of `relative` may be a symlink: the default
    /// `./results/<job-id>` (base: the working directory), and the queue's `.work/<id>/result`.
    public static func create(under base: String, relative: String, force: Bool) throws -> ResultsFolder {
        let root = open("/", agent_o_path | O_DIRECTORY | O_CLOEXEC)
        guard root >= 0 else { throw Failure.io("cannot open /", ResultsFS.errnoText(errno)) }
        defer { close(root) }
        let basePath = URL(fileURLWithPath: base).standardizedFileURL.path
        let baseFD = try ResultsFS.openDirectory(root, basePath.split(separator: "/").map(String.init),
                                                 follow: true, shown: "/")
        defer { close(baseFD) }
        var components = relative.split(separator: "/").map(String.init)
        guard let name = components.popLast(), !components.contains(".."), name != "..", name != "." else {
            throw Failure.notADirectory(basePath + "/" + relative)
        }
        let parent = try ResultsFS.openDirectory(baseFD, components, follow: false, shown: basePath)
        let final = ([basePath == "/" ? "" : basePath] + components + [name]).joined(separator: "/")
        return try make(parent: parent, name: name, finalPath: final, force: force)
    }

    /// How old a working folder of the same results folder must be before it counts as the
    /// leftover of a killed `run-job`.
    static let staleWorkingFolderAge: Int = 24 * 3600

    /// Removes `.<name>.tmp-*` folders beside the target that belong to this user and were
    /// last changed more than `staleWorkingFolderAge` ago: what a `run-job` killed with
    /// SIGKILL left (the queue sweeps its own work folders). A live job's folder is younger
    /// unless the job runs for over a day, and a second run for the same results folder
    /// would then fail at its final rename anyway.
    static func sweepStaleWorkingFolders(_ parent: Int32, _ name: String) {
        let dup = fcntl(parent, F_DUPFD_CLOEXEC, 0)
        guard dup >= 0, let d = fdopendir(dup) else { if dup >= 0 { close(dup) }; return }
        defer { closedir(d) }
        let prefix = ".\(name).tmp-"
        var stale: [String] = []
        let now = time(nil)
        while let entry = readdir(d) {
            let entryName = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            guard entryName.hasPrefix(prefix) else { continue }
            var st = stat()
            guard fstatat(parent, entryName, &st, AT_SYMLINK_NOFOLLOW) == 0, (st.st_mode & S_IFMT) == S_IFDIR,
                  st.st_uid == getuid(), Int(now - st.st_mtim.tv_sec) > staleWorkingFolderAge else { continue }
            stale.append(entryName)
        }
        for entryName in stale { ResultsFS.removeTree(parent, entryName) }
    }

    /// Checks the target under `parent` (which it takes ownership of) and makes the working folder.
    private static func make(parent: Int32, name: String, finalPath: String, force: Bool) throws -> ResultsFolder {
        do {
            try checkTarget(parent, name, finalPath: finalPath, force: force)
            sweepStaleWorkingFolders(parent, name)
            // mkdtemp has no *at form: pick random names until one is new.
            var working = ""
            for _ in 0..<100 {
                let suffix = String(UInt64.random(in: 0...UInt64.max), radix: 36)
                working = ".\(name).tmp-\(suffix)"
                if mkdirat(parent, working, 0o755) == 0 { break }
                guard errno == EEXIST else {
                    throw Failure.io("cannot create a results folder beside \(finalPath)", ResultsFS.errnoText(errno))
                }
                working = ""
            }
            guard !working.isEmpty else { throw Failure.io("cannot create a results folder beside \(finalPath)", "no free name") }
            let wfd = openat(parent, working, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard wfd >= 0 else {
                let err = errno
                unlinkat(parent, working, AT_REMOVEDIR)
                throw Failure.io("cannot open the results folder beside \(finalPath)", ResultsFS.errnoText(err))
            }
            // mkdirat's mode is filtered by the umask; the folder is meant to be 0755.
            fchmod(wfd, 0o755)
            guard mkdirat(wfd, "logs", 0o755) == 0 else {
                let err = errno
                close(wfd)
                ResultsFS.removeTree(parent, working)
                throw Failure.io("cannot create \(finalPath)/logs", ResultsFS.errnoText(err))
            }
            let shownParent = finalPath.split(separator: "/").dropLast().joined(separator: "/")
            return ResultsFolder(finalPath: finalPath, workingPath: "/" + shownParent + "/" + working, parentFD: parent,
                                 workingFD: wfd, finalName: name, workingName: working, force: force)
        } catch {
            close(parent)
            throw error
        }
    }

    /// Missing or an empty folder: fine; a non-empty folder: only with `force`; anything
    /// else (a symlink, a file): an error naming it.
    private static func checkTarget(_ parent: Int32, _ name: String, finalPath: String, force: Bool) throws {
        switch ResultsFS.kind(parent, name) {
        case .missing: return
        case .symlink: throw Failure.symlink(finalPath)
        case .other: throw Failure.notADirectory(finalPath)
        case .unknown: throw Failure.io("cannot inspect \(finalPath)", ResultsFS.errnoText(errno))
        case .directory:
            if !force && ResultsFS.isNonEmptyDirectory(parent, name) { throw Failure.notEmpty(finalPath) }
        }
    }

    private init(finalPath: String, workingPath: String, parentFD: Int32, workingFD: Int32,
                 finalName: String, workingName: String, force: Bool) {
        self.finalPath = finalPath
        self.workingPath = workingPath
        self.parentFD = parentFD
        self.workingFD = workingFD
        self.finalName = finalName
        self.workingName = workingName
        self.force = force
    }

    deinit {
        close(workingFD)
        close(parentFD)
    }

    /// Writes `data` to `relative` inside the working folder (subfolders made as needed).
    /// No temp file per file: nobody sees the working folder before `commit()` renames it
    /// into place, and `commit()` fsyncs the whole tree first. A symlink anywhere on the
    /// way is refused, never followed.
    public func write(_ data: Data, to relative: String) throws {
        var components = relative.split(separator: "/").map(String.init)
        guard let name = components.popLast() else { throw Failure.notADirectory(workingPath + "/" + relative) }
        let dir = components.isEmpty ? workingFD
            : try ResultsFS.openDirectory(workingFD, components, follow: false, shown: workingPath)
        defer { if dir != workingFD { close(dir) } }
        let fd = openat(dir, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Failure.io("cannot write \(workingPath)/\(relative)", ResultsFS.errnoText(errno)) }
        defer { close(fd) }
        guard writeAll(fd, data) else {
            throw Failure.io("cannot write \(workingPath)/\(relative)", ResultsFS.errnoText(errno))
        }
    }

    /// Makes the tree durable, then moves it into place atomically. A folder that appeared
    /// at the target meanwhile is swapped out (`RENAME_EXCHANGE`) only if empty or with
    /// `--force`; a symlink or file there is an error naming it.
    public func commit() throws {
        let synced = ResultsFS.syncTree(workingFD)
        // EINVAL: the file system does not support fsync (nothing to make durable).
        if synced != 0 && synced != EINVAL {
            throw Failure.io("cannot sync \(workingPath)", ResultsFS.errnoText(synced))
        }
        var err = ResultsFS.renameat2(parentFD, workingName, parentFD, finalName, UInt32(AGENT_RENAME_NOREPLACE))
        if err == EEXIST || err == ENOTEMPTY {
            try Self.checkTarget(parentFD, finalName, finalPath: finalPath, force: force)
            err = ResultsFS.renameat2(parentFD, workingName, parentFD, finalName, UInt32(AGENT_RENAME_EXCHANGE))
            // The old folder now has the working name: remove it (a symlink swapped in
            // between the check and the exchange is unlinked, never followed).
            if err == 0 { ResultsFS.removeTree(parentFD, workingName) }
        }
        guard err == 0 else { throw Failure.io("cannot move results into \(finalPath)", ResultsFS.errnoText(err)) }
        // The rename is durable once the parent's own entry list is.
        let parentSynced = fsync(parentFD) == 0 ? 0 : errno
        if parentSynced != 0 && parentSynced != EINVAL {
            throw Failure.io("cannot sync the folder of \(finalPath)", ResultsFS.errnoText(parentSynced))
        }
    }

    /// Removes the working folder (when the job could not even start).
    public func discard() {
        ResultsFS.removeTree(parentFD, workingName)
    }
}
