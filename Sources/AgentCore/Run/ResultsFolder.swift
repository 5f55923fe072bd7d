import AgentSupport
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// A results folder that appears complete or not at all: everything is written into a
/// hidden temporary sibling (`.<name>.tmp-XXXX`) that is renamed into place at the end.
public struct ResultsFolder: Sendable {
    /// Where the results will appear.
    public let finalPath: String
    /// Where they are written meanwhile.
    public let workingPath: String

    public enum Failure: Error, CustomStringConvertible, Sendable {
        case notEmpty(String)
        case io(String, String)

        public var description: String {
            switch self {
            case .notEmpty(let p): return "results folder \(p) exists and is not empty (use --force to replace it)"
            case .io(let what, let err): return "\(what): \(err)"
            }
        }
    }

    /// Prepares a working folder beside `path`. Refuses a non-empty `path` unless `force`.
    public static func create(at path: String, force: Bool) throws -> ResultsFolder {
        let fm = FileManager.default
        let final = URL(fileURLWithPath: path).standardizedFileURL.path
        if let entries = try? fm.contentsOfDirectory(atPath: final), !entries.isEmpty, !force {
            throw Failure.notEmpty(final)
        }
        let parent = URL(fileURLWithPath: final).deletingLastPathComponent().path
        do {
            try fm.createDirectory(atPath: parent, withIntermediateDirectories: true)
        } catch {
            throw Failure.io("cannot create \(parent)", "\(error)")
        }
        let base = URL(fileURLWithPath: final).lastPathComponent
        var template = Array("\(parent)/.\(base).tmp-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else {
            throw Failure.io("cannot create a results folder beside \(final)", String(cString: strerror(errno)))
        }
        let working = String(cString: template)
        chmod(working, 0o755)
        try fm.createDirectory(atPath: working + "/logs", withIntermediateDirectories: true)
        return ResultsFolder(finalPath: final, workingPath: working)
    }

    /// Writes `data` to `relative` inside the working folder. No temp file and no fsync per
    /// file: nobody sees the working folder before `commit()` renames it into place, which is
    /// what makes the results appear all at once (the step logs are written the same way).
    /// A symlink at the target is refused, never followed.
    public func write(_ data: Data, to relative: String) throws {
        let path = workingPath + "/" + relative
        if relative.contains("/") {
            let parent = URL(fileURLWithPath: path).deletingLastPathComponent()
            try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true)
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o666)
        guard fd >= 0 else { throw Failure.io("cannot write \(path)", String(cString: strerror(errno))) }
        defer { close(fd) }
        try data.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) in
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw Failure.io("cannot write \(path)", String(cString: strerror(errno)))
                }
                offset += n
            }
        }
    }

    /// Moves the finished folder into place. A previous folder at `finalPath` (only
    /// there with `--force`) is swapped out first and then removed.
    public func commit() throws {
        let fm = FileManager.default
        var displaced: String?
        if fm.fileExists(atPath: finalPath) {
            let old = workingPath + ".old"
            if rename(finalPath, old) != 0 {
                throw Failure.io("cannot replace \(finalPath)", String(cString: strerror(errno)))
            }
            displaced = old
        }
        if rename(workingPath, finalPath) != 0 {
            let err = String(cString: strerror(errno))
            if let displaced { _ = rename(displaced, finalPath) }
            throw Failure.io("cannot move results into \(finalPath)", err)
        }
        if let displaced { try? fm.removeItem(atPath: displaced) }
    }

    /// Removes the working folder (when the job could not even start).
    public func discard() {
        try? FileManager.default.removeItem(atPath: workingPath)
    }
}
