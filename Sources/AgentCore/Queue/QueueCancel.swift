import AgentSupport
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// What `agent cancel JOBS_DIR ID` did.
public enum CancelOutcome: Sendable, Equatable {
    /// The job was queued; its result folder (state `cancelled`) is at this path in failed/.
    case cancelledQueued(path: String)
    /// The job is running; a request was left in cancel/ for its agent, which cancels the
    /// job within a second (inotify) or at its next rescan, and still writes its results.
    case requested(agent: String?, host: String?)
}

extension QueueStore {
    /// Cancels a queued or running job. A queued job is taken the way an agent claims one
    /// (flock, rename, inode check), so it can never both run and be cancelled.
    /// Throws `QueueError.noSuchJob` when the id is neither queued nor running.
    public func cancel(id: String) throws -> CancelOutcome {
        try QueueLayout.validate(id: id)
        let f = try folders()
        let name = id + ".json"
        // A job can be between folders for a moment (being claimed, requeued): look again.
        for round in 0..<50 {
            if round > 0 { usleep(20_000) }
            if QueueFS.isRegularFile(f.incoming, name) {
                if let path = try cancelQueued(f, id) { return .cancelledQueued(path: path) }
                continue
            }
            if QueueFS.exists(f.running, name) {
                let lease = readLease(id)
                let request = CancelRequest(id: id, token: lease?.token, requested: Date())
                try QueueFS.writeAtomically(QueueJSON.encode(request), f.cancel, id, shown: f.shown(f.cancel, id))
                return .requested(agent: lease?.agent, host: lease?.host)
            }
            if round >= 2 { break }
        }
        throw QueueError.noSuchJob(id: id, jobsDirectory: layout.root)
    }

    /// Nil when an agent claimed the job first (the caller looks again).
    private func cancelQueued(_ f: QueueFolders, _ id: String) throws -> String? {
        let name = id + ".json"
        guard case .locked(let lock) = JobLock.acquire(f.incoming, name) else { return nil }
        guard lock.matches(f.incoming, name) else { lock.release(); return nil }
        let work: (name: String, fd: Int32)
        do { work = try makeWorkDirectory(id: id, token: QueueFS.randomToken()) } catch { lock.release(); throw error }
        defer { close(work.fd) }
        if mkdirat(work.fd, "result", 0o755) != 0 {
            lock.release()
            throw QueueError.io(operation: "mkdir", path: f.shown(f.work, work.name + "/result"), errno: errno)
        }
        let result = openat(work.fd, "result", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if result < 0 {
            lock.release()
            throw QueueError.io(operation: "open", path: f.shown(f.work, work.name + "/result"), errno: errno)
        }
        defer { close(result) }
        let attempt = previousAttempts(id)
        let status = QueueStatusDocument(id: id, state: .cancelled, reason: "cancelled",
                                         message: "cancelled while queued (agent cancel)", exitCode: 130,
                                         finished: Date())
        try QueueFS.writeAtomically(QueueJSON.encode(status), result, "status.json",
                                    shown: f.shown(f.work, work.name + "/result/status.json"))
        // Status first, then the job file: a crash in between leaves a complete result
        // that recovery publishes, never a job with no status.
        let record = QueueRecord(id: id, agent: agentID, host: host, attempt: attempt, claimed: nil,
                                 finished: Date(), exitCode: nil, outcome: "failed")
        return try finish(id: id, lock: lock, fromDir: f.incoming, name: name, work: work, record: record, toDone: false)
    }
}
