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
/// made while holding its flock, with a no-replace rename, and checked afterwards by inode.
public struct QueueStore: Sendable {
    public let layout: QueueLayout
    public let agentID: String
    public let host: String

    public init(layout: QueueLayout, agentID: String, host: String) {
        self.layout = layout
        self.agentID = agentID
        self.host = host
    }

    /// Queued job ids, oldest first (mtime, then name). Dotfiles, non-`*.json` names and
    /// anything that is not a regular file (a symlink is never followed) are left alone.
    public func queuedJobs() -> [String] {
        var entries: [(id: String, mtime: Double)] = []
        for name in QueueFS.list(layout.incoming) {
            guard let id = QueueLayout.jobID(fileName: name),
                  let st = QueueFS.lstatInfo(layout.incoming + "/" + name),
                  (st.st_mode & S_IFMT) == S_IFREG else { continue }
            entries.append((id, QueueFS.modificationTime(st)))
        }
        entries.sort { $0.mtime != $1.mtime ? $0.mtime < $1.mtime : $0.id < $1.id }
        return entries.map(\.id)
    }

    /// Ids with a job file in `running/`.
    public func runningJobs() -> [String] {
        QueueFS.list(layout.running).compactMap(QueueLayout.jobID(fileName:)).sorted()
    }

    /// Attempts used so far by a requeued job (0 for a new one).
    func previousAttempts(_ id: String) -> Int {
        guard let data = QueueFS.read(layout.attemptsFile(id), limit: 64),
              let n = Int(String(decoding: data, as: UTF8.self).trimmingWhitespaceAndNewlines())
        else { return 0 }
        return max(0, n)
    }

    /// Tries to claim `incoming/<id>.json`: lock it, rename it into `running/`, check the
    /// rename by inode, write the lease. Nil when another agent got there first, or a job
    /// with the same id is running (the queued one waits for it).
    public func claim(_ id: String) -> ClaimedJob? {
        let source = layout.incomingFile(id)
        guard case .locked(let lock) = JobLock.acquire(source) else { return nil }
        // The descriptor may point at a file that an agent has already run and moved on.
        guard lock.matches(source) else { lock.release(); return nil }
        let target = layout.runningFile(id)
        _ = QueueFS.renameNoReplace(source, target)
        // Whatever rename reported, the claim is what the directory now says.
        guard lock.matches(target) else { lock.release(); return nil }
        let attempt = previousAttempts(id) + 1
        let now = Date()
        let token = QueueFS.randomToken()
        let lease = Lease(id: id, agent: agentID, host: host, pid: getpid(), token: token,
                          attempt: attempt, started: now, heartbeat: now)
        try? writeLease(lease)
        // A request left over from an earlier run of this id is not for this one.
        if let req = QueueJSON.decode(CancelRequest.self, from: layout.cancelFile(id)), req.token != nil {
            unlink(layout.cancelFile(id))
        }
        return ClaimedJob(id: id, token: token, attempt: attempt, claimed: now, lock: lock)
    }

    func writeLease(_ lease: Lease) throws {
        try QueueFS.writeAtomically(QueueJSON.encode(lease), to: layout.leaseFile(lease.id))
    }

    /// Rewrites the lease's heartbeat (while the job file is still ours).
    public func heartbeat(_ job: ClaimedJob) {
        guard job.lock.matches(layout.runningFile(job.id)) else { return }
        let lease = Lease(id: job.id, agent: agentID, host: host, pid: getpid(), token: job.token,
                          attempt: job.attempt, started: job.claimed, heartbeat: Date())
        try? writeLease(lease)
    }

    public func readLease(_ id: String) -> Lease? {
        QueueJSON.decode(Lease.self, from: layout.leaseFile(id))
    }

    /// Puts a job this process holds the lock of back into `incoming/`, recording
    /// `attemptsUsed`. If a new job with the same id was queued meanwhile, the old one goes
    /// to `failed/` instead (nothing is overwritten). Returns where the job went.
    @discardableResult
    func requeue(id: String, lock: JobLock, attemptsUsed: Int, lostLease: Lease?) throws -> String {
        let current = layout.runningFile(id)
        try QueueFS.writeAtomically(Data("\(attemptsUsed)\n".utf8), to: layout.attemptsFile(id))
        unlink(layout.leaseFile(id))
        let target = layout.incomingFile(id)
        let e = QueueFS.renameNoReplace(current, target)
        if lock.matches(target) {
            if QueueFS.exists(current) && lock.matches(current) { unlink(current) }
            return target
        }
        if e == EEXIST {
            let status = QueueStatusDocument(
                id: id, state: .error, reason: "agent lost",
                message: "agent lost, and a newer job with the same id is queued: not requeued",
                exitCode: 3, finished: Date())
            return try failWithoutRunning(id: id, lock: lock, status: status, attempt: attemptsUsed,
                                          lease: lostLease, from: current)
        }
        throw QueueError.io(operation: "requeue", path: current, errno: e)
    }

    /// A fresh work folder for building a result: `.work/<id>.<token>/`.
    func makeWorkDirectory(id: String, token: String) throws -> String {
        let dir = layout.workDirectory(id, token: token)
        if mkdir(dir, 0o755) != 0 && errno != EEXIST {
            throw QueueError.io(operation: "mkdir", path: dir, errno: errno)
        }
        return dir
    }

    /// Builds a result folder with the queue's own status.json for a job that never reaches
    /// the runner (cancelled while queued, invalid, agent lost), moves the locked job file
    /// from `from` into it and publishes it in `failed/`. Returns the published path.
    func failWithoutRunning(id: String, lock: JobLock, status: QueueStatusDocument, attempt: Int,
                            lease: Lease?, from: String) throws -> String {
        let token = QueueFS.randomToken()
        let work = try makeWorkDirectory(id: id, token: token)
        let result = work + "/result"
        if mkdir(result, 0o755) != 0 && errno != EEXIST {
            throw QueueError.io(operation: "mkdir", path: result, errno: errno)
        }
        try QueueFS.writeAtomically(QueueJSON.encode(status), to: result + "/status.json")
        let record = QueueRecord(id: id, agent: lease?.agent ?? agentID, host: lease?.host ?? host,
                                 attempt: attempt, claimed: lease?.started, finished: Date(),
                                 exitCode: nil, outcome: "failed")
        return try finish(id: id, lock: lock, jobFile: from, result: result, record: record,
                          workDirectory: work, toDone: false)
    }

    /// Completes a job: moves the locked job file into the built `result` folder as
    /// job.json, writes queue.json, and renames the folder into `done/` or `failed/` under
    /// the first free name (`<id>`, `<id>.2`, `<id>.3`, …): a result is never overwritten.
    /// Then drops the lease, attempts record and cancel request, and releases the lock.
    func finish(id: String, lock: JobLock, jobFile: String, result: String, record: QueueRecord,
                workDirectory: String, toDone: Bool) throws -> String {
        defer { lock.release() }
        let jobCopy = result + "/job.json"
        if rename(jobFile, jobCopy) != 0 && !lock.matches(jobCopy) {
            throw QueueError.io(operation: "move into results", path: jobFile, errno: errno)
        }
        var rec = record
        rec.outcome = toDone ? "done" : "failed"
        try? QueueFS.writeAtomically(QueueJSON.encode(rec), to: result + "/queue.json")
        let published = try publish(result, id: id, toDone: toDone)
        cleanUp(id: id, workDirectory: workDirectory, lock: lock)
        return published
    }

    /// Renames a complete result folder to the first free `<id>[.n]` in done/ or failed/.
    func publish(_ result: String, id: String, toDone: Bool) throws -> String {
        let parent = toDone ? layout.done : layout.failed
        for n in 1...10_000 {
            let target = parent + "/" + (n == 1 ? id : "\(id).\(n)")
            let e = QueueFS.renameNoReplace(result, target)
            if e == 0 { return target }
            if e == EEXIST { continue }
            // NFS may report failure for a rename that happened.
            if !QueueFS.exists(result) && QueueFS.exists(target + "/job.json") { return target }
            throw QueueError.io(operation: "publish", path: target, errno: e)
        }
        throw QueueError.io(operation: "publish", path: parent + "/" + id, errno: EEXIST)
    }

    /// Removes what belonged to a finished claim; the lease and cancel request only when
    /// they are not (yet) someone else's.
    func cleanUp(id: String, workDirectory: String, lock: JobLock) {
        let running = layout.runningFile(id)
        if !QueueFS.exists(running) {
            unlink(layout.leaseFile(id))
            unlink(layout.attemptsFile(id))
            unlink(layout.cancelFile(id))
        }
        QueueFS.removeTree(workDirectory)
    }
}
