import AgentSupport
import CAgentSys
import Crypto
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// A `*.json` entry of incoming/ that could not be a job and was filed to failed/.
public struct FiledEntry: Sendable, Equatable {
    /// The name it was filed under in failed/ (its id, or `invalid-<sha256 prefix>`).
    public var id: String
    /// The original file name, escaped (`QueueBadEntries.escape`).
    public var originalName: String
    /// Why: the message in its status.json.
    public var message: String
    public var path: String
}

/// Every file name in incoming/ either runs or is filed: a `*.json` entry whose name is too
/// long for the queue's derived names, is not UTF-8, or that is not a regular file (a
/// FIFO, a folder, a symlink, a socket) goes to failed/ with a status.json saying why.
/// It is never opened: it is moved by name (a FIFO opened for reading would block).
enum QueueBadEntries {
    /// `\xNN` for every byte that is not printable ASCII (and for the backslash itself).
    static func escape(_ bytes: [UInt8]) -> String {
        var out = ""
        for b in bytes {
            if b >= 0x20 && b < 0x7F && b != 0x5C { out.unicodeScalars.append(Unicode.Scalar(b)) }
            else { out += "\\x" + hexDigits(b, width: 2) }
        }
        return out
    }

    /// The name a bad entry is filed under when its own cannot be used.
    static func derivedID(_ bytes: [UInt8]) -> String {
        let digest = SHA256.hash(data: bytes)
        return "invalid-" + digest.prefix(8).map { hexDigits($0, width: 2) }.joined()
    }

    /// Why `name` (an entry of incoming/ ending in `.json`) is not a job, or nil when it may
    /// be one. The second value says whether it can be filed under its own id.
    static func problem(_ dir: Int32, _ name: [UInt8]) -> (message: String, ownName: Bool)? {
        let shown = escape(name)
        guard let text = String(validating: name, as: UTF8.self) else {
            return ("\(shown): the file name is not UTF-8", false)
        }
        if name.count - 5 > QueueLayout.maxIDBytes {
            return ("\(shown): the file name is too long (\(name.count) bytes; a job id has at most "
                    + "\(QueueLayout.maxIDBytes) bytes)", false)
        }
        guard let st = QueueFS.lstat(dir, text) else { return nil }
        let kind: String
        switch st.st_mode & S_IFMT {
        case S_IFREG: return nil
        case S_IFDIR: kind = "a directory"
        case S_IFLNK: kind = "a symlink"
        case S_IFIFO: kind = "a FIFO"
        case S_IFSOCK: kind = "a socket"
        default: kind = "a device"
        }
        return ("\(shown): not a regular file (\(kind))", true)
    }
}

extension QueueStore {
    /// Files every `*.json` entry of incoming/ that cannot be a job (see `QueueBadEntries`)
    /// to failed/. Safe with any number of agents: the rename out of incoming/ decides who
    /// files it; the others find it gone.
    public func fileBadEntries(now: Date = Date()) -> [FiledEntry] {
        guard let f = try? folders() else { return [] }
        var filed: [FiledEntry] = []
        for raw in QueueFS.listRaw(f.incoming) {
            guard raw.first != 0x2E, raw.count > 5, raw.suffix(5).elementsEqual(".json".utf8),
                  let problem = QueueBadEntries.problem(f.incoming, raw) else { continue }
            let id = problem.ownName ? String(decoding: raw.dropLast(5), as: UTF8.self) : QueueBadEntries.derivedID(raw)
            let original = QueueBadEntries.escape(raw)
            let status = QueueStatusDocument(id: id, state: .error, reason: "invalid job", message: problem.message,
                                             exitCode: 2, finished: now, originalName: original)
            if let path = try? file(raw, in: f, as: id, status: status) {
                filed.append(FiledEntry(id: id, originalName: original, message: problem.message, path: path))
            }
        }
        return filed
    }

    /// Moves `incoming/<raw>` into a new result folder (as job.json, whatever it is) beside
    /// its status.json and publishes it. Nil when another agent moved it first.
    private func file(_ raw: [UInt8], in f: QueueFolders, as id: String, status: QueueStatusDocument) throws -> String? {
        let work = try makeWorkDirectory(id: id, token: QueueFS.randomToken())
        defer { close(work.fd) }
        var moved = false
        do {
            guard mkdirat(work.fd, "result", 0o755) == 0 else {
                throw QueueError.io(operation: "mkdir", path: f.shown(f.work, work.name + "/result"), errno: errno)
            }
            let result = openat(work.fd, "result", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard result >= 0 else {
                throw QueueError.io(operation: "open", path: f.shown(f.work, work.name + "/result"), errno: errno)
            }
            defer { close(result) }
            try QueueFS.writeAtomically(QueueJSON.encode(status), result, "status.json",
                                        shown: f.shown(f.work, work.name + "/result/status.json"))
            // Status first, then the entry: a crash in between leaves a result that recovery
            // removes (the entry still queued) or publishes (the entry moved), never a loss.
            moved = QueueFS.withRawName(raw) { agent_renameat2(f.incoming, $0, result, "job.json", 1) == 0 }
                || QueueFS.withRawName(raw) { renameat(f.incoming, $0, result, "job.json") == 0 }
            if !moved && (errno == EACCES || errno == EPERM) {
                // A folder the agent may not write (another user's) cannot change parents:
                // rename(2) would have to update its "..". It can be renamed in place, to a
                // dotted name that is never read again, and the result says where it is.
                let aside = ".rejected-" + QueueBadEntries.derivedID(raw)
                guard QueueFS.withRawName(raw, { renameat(f.incoming, $0, f.incoming, aside) == 0 }) else {
                    QueueFS.removeTree(f.work, work.name)
                    return nil
                }
                var doc = status
                doc.message += "; it could not be moved (\(String(cString: strerror(EACCES)))) and was renamed "
                    + "to incoming/\(aside): remove it"
                try QueueFS.writeAtomically(QueueJSON.encode(doc), result, "status.json",
                                            shown: f.shown(f.work, work.name + "/result/status.json"))
                moved = true
            } else if !moved {
                QueueFS.removeTree(f.work, work.name)
                return nil
            }
            QueueFS.syncDirectory(result)
            QueueFS.syncDirectory(f.incoming)
            let path = try publish(work, id: id, toDone: false)
            QueueFS.removeTree(f.work, work.name)
            return path
        } catch {
            // Once the entry is in the work folder, recovery publishes it (never delete it).
            if !moved { QueueFS.removeTree(f.work, work.name) }
            throw error
        }
    }
}
