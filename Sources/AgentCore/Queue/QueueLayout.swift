import AgentSupport
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// The folders of a queue directory (`agent watch JOBS_DIR`).
///
/// ```
/// JOBS_DIR/
///   incoming/      producers write `.name.json`, then rename it to `name.json`
///   running/       `name.json` (claimed, flock-ed by its agent) and `name.lease`
///   done/          `name/`: job.json, queue.json and the results folder
///   failed/        `name/`: the same, for jobs that failed or could not run
///   cancel/        `name`: a request to cancel a running job
///   .work/         `name.TOKEN/`: results being built, renamed into done/ or failed/
///   .attempts/     `name`: how many attempts a requeued job has used
/// ```
/// The queue id of a job is its file name without `.json`.
public struct QueueLayout: Sendable, Equatable {
    public let root: String

    public init(root: String) {
        var r = root
        while r.count > 1 && r.hasSuffix("/") { r.removeLast() }
        self.root = r
    }

    public var incoming: String { root + "/incoming" }
    public var running: String { root + "/running" }
    public var done: String { root + "/done" }
    public var failed: String { root + "/failed" }
    public var cancel: String { root + "/cancel" }
    public var work: String { root + "/.work" }
    public var attempts: String { root + "/.attempts" }

    /// Every folder the queue uses, in creation order.
    public var allDirectories: [String] { Self.folderNames.map { root + "/" + $0 } }

    /// The names of the folders in JOBS_DIR, in the order `QueueFolders` opens them.
    static let folderNames = ["incoming", "running", "done", "failed", "cancel", ".work", ".attempts"]

    /// The longest queue id, in bytes. Everything the queue derives from an id must fit
    /// NAME_MAX (255): `.work/ID.TOKEN` (+13), `failed/ID.N` (+6), `running/ID.lease` (+6).
    /// A longer name is filed to failed/ under a derived name, never claimed.
    public static let maxIDBytes = 200

    public func incomingFile(_ id: String) -> String { incoming + "/" + id + ".json" }
    public func runningFile(_ id: String) -> String { running + "/" + id + ".json" }
    public func leaseFile(_ id: String) -> String { running + "/" + id + ".lease" }
    public func cancelFile(_ id: String) -> String { cancel + "/" + id }
    public func attemptsFile(_ id: String) -> String { attempts + "/" + id }
    public func workDirectory(_ id: String, token: String) -> String { work + "/" + id + "." + token }

    /// Creates the root and every folder that is missing. A path that exists but is not a
    /// directory (or is a symlink: the queue never follows one) is an error naming it.
    public func create() throws {
        _ = try QueueFolders(self)
    }

    /// The queue id for a file name in `incoming/` or `running/`: `name.json` → `name`.
    /// Dotfiles (producers' half-written files) and anything else are not jobs.
    public static func jobID(fileName: String) -> String? {
        guard !fileName.hasPrefix("."), fileName.hasSuffix(".json"), fileName.count > 5 else { return nil }
        return String(fileName.dropLast(5))
    }

    /// Checks an id given on the command line (`agent cancel JOBS_DIR ID`).
    public static func validate(id: String) throws {
        if id.isEmpty || id.hasPrefix(".") || id.contains("/") || id.contains("\0") || id.utf8.count > maxIDBytes {
            throw QueueError.invalidJobID(id)
        }
    }
}
