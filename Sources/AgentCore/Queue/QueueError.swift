import AgentSupport
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// What went wrong in the queue directory. Every case names the path (or job id) that
/// failed, so the agent's log and the CLI's error line say what to look at.
public enum QueueError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A directory of the layout could not be created or is not a directory.
    case layout(path: String, reason: String)
    /// A file-system call failed on `path`.
    case io(operation: String, path: String, errno: Int32)
    /// A command-line option has a value the queue cannot use.
    case invalidOption(name: String, value: String, reason: String)
    /// `agent cancel`: the id is neither queued nor running.
    case noSuchJob(id: String, jobsDirectory: String)
    /// A job id that cannot name a queue entry (empty, dotted, or with a slash).
    case invalidJobID(String)
    /// An entry that is not what the queue expects there (e.g. not a regular file).
    case invalidEntry(path: String, reason: String)
    /// A file larger than the queue reads: refused, never cut short.
    case tooLarge(path: String, limit: Int)
    /// `agent watch` was built without a job runner (see `WatchCommand.swift`).
    case runnerUnavailable

    public var description: String {
        switch self {
        case .layout(let path, let reason):
            return "\(path): \(reason)"
        case .io(let operation, let path, let errno):
            return "\(path): \(operation) failed: \(String(cString: strerror(errno)))"
        case .invalidOption(let name, let value, let reason):
            return "\(name) \(value): \(reason)"
        case .noSuchJob(let id, let dir):
            return "\(dir): no queued or running job with id \"\(id)\""
        case .invalidJobID(let id):
            return "invalid job id \"\(id)\": expected a file name without \"/\" that does not start with \".\""
                + " and has at most \(QueueLayout.maxIDBytes) bytes"
        case .invalidEntry(let path, let reason):
            return "\(path): \(reason)"
        case .tooLarge(let path, let limit):
            return "\(path): larger than \(limit) bytes (the most the queue reads)"
        case .runnerUnavailable:
            return "this build of agent has no job runner wired into `agent watch`"
        }
    }
}
