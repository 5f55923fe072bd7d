import AgentSupport
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// A job this agent has claimed: the file is `running/<id>.json` and `lock` holds its flock.
public struct ClaimedJob: Sendable {
    public let id: String
    public let token: String
    public let attempt: Int
    public let claimed: Date
    let lock: JobLock
}

/// The queue's moves between folders: claim, requeue, finish. Every move of a job file is
/// made while holding its flock, with a no-replace rename between folder descriptors
/// (`QueueFolders`), and checked afterwards by inode.
public struct QueueStore: Sendable {
    public let layout: QueueLayout
    public let agentID: String
    /// The host name, shown in leases and results.
    public let host: String
    /// `HostIdentity`: decides which leases are judged by their flock.
    public let hostID: String
    private let opened: OpenedFolders

    public init(layout: QueueLayout, agentID: String, host: String, hostID: String = HostIdentity.current) {
        self.layout = layout
        self.agentID = agentID
        self.host = host
        self.hostID = hostID
        self.opened = OpenedFolders(layout)
    }

    /// The queue's folders, opened (and created) at the first call and kept open: every
    /// later call returns the same descriptors. Throws naming the folder that is wrong.
    public func folders() throws -> QueueFolders { try opened.get() }

    /// Queued job ids, oldest first (mtime, then name). Dotfiles and non-`*.json` names are
    /// left alone (producers write those); a `*.json` entry that cannot be a job (its name
    /// too long or not UTF-8, or not a regular file) is filed to failed/ by `fileBadEntries`.
    public func queuedJobs() -> [String] {
        guard let f = try? folders() else { return [] }
        var entries: [(id: String, mtime: Double)] = []
        for name in QueueFS.list(f.incoming) {
            guard let id = QueueLayout.jobID(fileName: name), id.utf8.count <= QueueLayout.maxIDBytes,
                  let st = QueueFS.lstat(f.incoming, name),
                  (st.st_mode & S_IFMT) == S_IFREG else { continue }
            entries.append((id, QueueFS.modificationTime(st)))
        }
        entries.sort { $0.mtime != $1.mtime ? $0.mtime < $1.mtime : $0.id < $1.id }
        return entries.map(\.id)
    }

    /// Ids with a job file in `running/`.
    public func runningJobs() -> [String] {
        guard let f = try? folders() else { return [] }
        return QueueFS.list(f.running).compactMap(QueueLayout.jobID(fileName:)).sorted()
    }

    /// Attempts used so far by a requeued job (0 for a new one).
    func previousAttempts(_ id: String) -> Int {
        guard let f = try? folders(), let data = QueueFS.readIfPresent(f.attempts, id, limit: 64),
              let n = Int(String(decoding: data, as: UTF8.self).trimmingWhitespaceAndNewlines())
        else { return 0 }
        return max(0, n)
    }

    /// Tries to claim `incoming/<id>.json`: lock it, rename it into `running/`, check the
    /// rename by inode, write the lease. Nil when another agent got there first, or a job
    /// with the same id is running (the queued one waits for it).
    public func claim(_ id: String) -> ClaimedJob? {
        guard id.utf8.count <= QueueLayout.maxIDBytes, let f = try? folders() else { return nil }
        let name = id + ".json"
        guard case .locked(let lock) = JobLock.acquire(f.incoming, name) else { return nil }
        // The descriptor may point at a file that an agent has already run and moved on.
        guard lock.matches(f.incoming, name) else { lock.release(); return nil }
        _ = QueueFS.renameNoReplace(f.incoming, name, f.running, name)
        // Whatever rename reported, the claim is what the directory now says.
        guard lock.matches(f.running, name) else { lock.release(); return nil }
        QueueFS.syncDirectory(f.running)
        QueueFS.syncDirectory(f.incoming)
        let attempt = previousAttempts(id) + 1
        let now = Date()
        let token = QueueFS.randomToken()
        let lease = Lease(id: id, agent: agentID, host: host, hostID: hostID, pid: getpid(), token: token,
                          attempt: attempt, started: now, heartbeat: now)
        do {
            try writeLease(lease)
        } catch {
            // Without a lease nobody can tell this claim from a lost one: put it back.
            _ = try? requeue(id: id, lock: lock, attemptsUsed: attempt - 1, lostLease: nil)
            lock.release()
            return nil
        }
        // A request left over from an earlier run of this id is not for this one.
        if let req = QueueJSON.decode(CancelRequest.self, f.cancel, id), req.token != nil {
            unlinkat(f.cancel, id, 0)
        }
        return ClaimedJob(id: id, token: token, attempt: attempt, claimed: now, lock: lock)
    }

    func writeLease(_ lease: Lease) throws {
        let f = try folders()
        let name = lease.id + ".lease"
        try QueueFS.writeAtomically(QueueJSON.encode(lease), f.running, name, shown: f.shown(f.running, name))
    }

    /// Rewrites the lease's heartbeat (while the job file is still ours). Throws when the
    /// lease could not be written (the heartbeat thread logs it).
    public func heartbeat(_ job: ClaimedJob) throws {
        let f = try folders()
        guard job.lock.matches(f.running, job.id + ".json") else { return }
        let lease = Lease(id: job.id, agent: agentID, host: host, hostID: hostID, pid: getpid(), token: job.token,
                          attempt: job.attempt, started: job.claimed, heartbeat: Date())
        try writeLease(lease)
    }

    public func readLease(_ id: String) -> Lease? {
        guard let f = try? folders() else { return nil }
        return QueueJSON.decode(Lease.self, f.running, id + ".lease")
    }

    /// Puts a job this process holds the lock of back into `incoming/`, recording
    /// `attemptsUsed`. If a new job with the same id was queued meanwhile, the old one goes
    /// to `failed/` instead (nothing is overwritten). Returns where the job went.
    @discardableResult
    func requeue(id: String, lock: JobLock, attemptsUsed: Int, lostLease: Lease?) throws -> String {
        let f = try folders()
        let name = id + ".json"
        try QueueFS.writeAtomically(Data("\(attemptsUsed)\n".utf8), f.attempts, id, shown: f.shown(f.attempts, id))
        unlinkat(f.running, id + ".lease", 0)
        let e = QueueFS.renameNoReplace(f.running, name, f.incoming, name)
        if lock.matches(f.incoming, name) {
            if lock.matches(f.running, name) { unlinkat(f.running, name, 0) }
            QueueFS.syncDirectory(f.incoming)
            QueueFS.syncDirectory(f.running)
            return f.shown(f.incoming, name)
        }
        if e == EEXIST {
            let status = QueueStatusDocument(
                id: id, state: .error, reason: "agent lost",
                message: "agent lost, and a newer job with the same id is queued: not requeued",
                exitCode: 3, finished: Date())
            return try failWithoutRunning(id: id, lock: lock, status: status, attempt: attemptsUsed,
                                          lease: lostLease, fromDir: f.running, name: name)
        }
        throw QueueError.io(operation: "requeue", path: f.shown(f.running, name), errno: e)
    }

    /// A fresh work folder for building a result, `.work/<id>.<token>/`, opened (its
    /// descriptor is returned; the caller closes it). The name must be new: an existing
    /// entry (which nobody but an intruder can have made: the token is random) is refused.
    func makeWorkDirectory(id: String, token: String) throws -> (name: String, fd: Int32) {
        let f = try folders()
        let name = id + "." + token
        if mkdirat(f.work, name, 0o755) != 0 {
            throw QueueError.io(operation: "create the work folder", path: f.shown(f.work, name), errno: errno)
        }
        let fd = openat(f.work, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 { throw QueueError.io(operation: "open the work folder", path: f.shown(f.work, name), errno: errno) }
        return (name, fd)
    }

    /// Builds a result folder with the queue's own status.json for a job that never reaches
    /// the runner (cancelled while queued, invalid, agent lost), moves the locked job file
    /// `fromDir/name` into it and publishes it in `failed/`. Returns the published path.
    func failWithoutRunning(id: String, lock: JobLock, status: QueueStatusDocument, attempt: Int,
                            lease: Lease?, fromDir: Int32, name: String) throws -> String {
        let f = try folders()
        let work = try makeWorkDirectory(id: id, token: QueueFS.randomToken())
        defer { close(work.fd) }
        if mkdirat(work.fd, "result", 0o755) != 0 {
            throw QueueError.io(operation: "mkdir", path: f.shown(f.work, work.name + "/result"), errno: errno)
        }
        let result = openat(work.fd, "result", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if result < 0 { throw QueueError.io(operation: "open", path: f.shown(f.work, work.name + "/result"), errno: errno) }
        defer { close(result) }
        try QueueFS.writeAtomically(QueueJSON.encode(status), result, "status.json",
                                    shown: f.shown(f.work, work.name + "/result/status.json"))
        let record = QueueRecord(id: id, agent: lease?.agent ?? agentID, host: lease?.host ?? host,
                                 attempt: attempt, claimed: lease?.started, finished: Date(),
                                 exitCode: nil, outcome: "failed")
        return try finish(id: id, lock: lock, fromDir: fromDir, name: name, work: work, record: record, toDone: false)
    }

    /// Completes a job: moves the locked job file `fromDir/name` into the built
    /// `work/result` folder as job.json, writes queue.json, and renames the folder into
    /// `done/` or `failed/` under the first free name (`<id>`, `<id>.2`, …): a result is
    /// never overwritten. Then drops the lease, attempts record and cancel request, and
    /// releases the lock.
    func finish(id: String, lock: JobLock, fromDir: Int32, name: String, work: (name: String, fd: Int32),
                record: QueueRecord, toDone: Bool) throws -> String {
        defer { lock.release() }
        let f = try folders()
        let result = openat(work.fd, "result", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if result < 0 { throw QueueError.io(operation: "open", path: f.shown(f.work, work.name + "/result"), errno: errno) }
        defer { close(result) }
        if renameat(fromDir, name, result, "job.json") != 0 && !lock.matches(result, "job.json") {
            throw QueueError.io(operation: "move into results", path: f.shown(fromDir, name), errno: errno)
        }
        var rec = record
        rec.outcome = toDone ? "done" : "failed"
        try QueueFS.writeAtomically(QueueJSON.encode(rec), result, "queue.json",
                                    shown: f.shown(f.work, work.name + "/result/queue.json"))
        QueueFS.syncDirectory(fromDir)
        let published = try publish(work, id: id, toDone: toDone)
        cleanUp(id: id, workName: work.name)
        return published
    }

    /// Renames a complete `work/result` folder to the first free `<id>[.n]` in done/ or
    /// failed/, then syncs the folders so the move survives a power loss.
    func publish(_ work: (name: String, fd: Int32), id: String, toDone: Bool) throws -> String {
        let f = try folders()
        let parent = toDone ? f.done : f.failed
        for n in 1...10_000 {
            let target = n == 1 ? id : "\(id).\(n)"
            let e = QueueFS.renameNoReplace(work.fd, "result", parent, target)
            if e == 0 {
                QueueFS.syncDirectory(parent)
                return f.shown(parent, target)
            }
            if e == EEXIST { continue }
            // NFS may report failure for a rename that happened.
            if !QueueFS.exists(work.fd, "result") && QueueFS.exists(parent, target) { return f.shown(parent, target) }
            throw QueueError.io(operation: "publish", path: f.shown(parent, target), errno: e)
        }
        throw QueueError.io(operation: "publish", path: f.shown(parent, id), errno: EEXIST)
    }

    /// Removes what belonged to a finished claim; the lease and cancel request only when
    /// they are not (yet) someone else's.
    func cleanUp(id: String, workName: String) {
        guard let f = try? folders() else { return }
        if !QueueFS.exists(f.running, id + ".json") {
            unlinkat(f.running, id + ".lease", 0)
            unlinkat(f.attempts, id, 0)
            unlinkat(f.cancel, id, 0)
        }
        QueueFS.removeTree(f.work, workName)
    }
}

/// Opens a store's folders once, on first use, and keeps them (a struct cannot hold a lazy
/// value and stay Sendable; this box does, behind a lock).
final class OpenedFolders: @unchecked Sendable {
    private let layout: QueueLayout
    private let lock = Lock()
    private var folders: QueueFolders?

    init(_ layout: QueueLayout) { self.layout = layout }

    func get() throws -> QueueFolders {
        lock.lock()
        defer { lock.unlock() }
        if let folders { return folders }
        let opened = try QueueFolders(layout)
        folders = opened
        return opened
    }
}
