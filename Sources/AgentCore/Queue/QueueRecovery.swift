import AgentSupport
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// What one recovery pass did, for the log and the tests.
public enum RecoveryAction: Sendable, Equatable {
    /// A lost job went back to `incoming/`; `attempt` is the attempt that was lost.
    case requeued(id: String, attempt: Int)
    /// A job lost `maxAttempts` times went to `failed/` (`agent lost`).
    case failedAgentLost(id: String, attempts: Int, path: String)
    /// A result that its agent built but did not publish before dying was published.
    case publishedOrphan(id: String, path: String)
}

extension QueueStore {
    /// Finds jobs whose agent is gone and requeues them (or fails them after
    /// `maxAttempts`). A job is lost when its flock is free and its lease is from this host,
    /// or (other hosts, whose locks NFS may not show) its heartbeat is older than
    /// `leaseTimeout`. Runs at start-up and at every rescan; safe to run from any number of
    /// agents at once, because each action is taken while holding the job's flock.
    public func recover(leaseTimeout: Duration, maxAttempts: Int, now: Date = Date()) -> [RecoveryAction] {
        var actions: [RecoveryAction] = []
        actions += publishOrphanResults(leaseTimeout: leaseTimeout, now: now)
        for id in runningJobs() {
            if let action = recoverRunning(id, leaseTimeout: leaseTimeout, maxAttempts: maxAttempts, now: now) {
                actions.append(action)
            }
        }
        dropOrphanLeases()
        dropStaleCancelRequests(now: now)
        return actions
    }

    /// True when a lease from another host has not been refreshed within `leaseTimeout`.
    func isStale(_ lease: Lease, leaseTimeout: Duration, now: Date) -> Bool {
        now.timeIntervalSince(lease.heartbeat) > leaseTimeout.seconds
    }

    private func recoverRunning(_ id: String, leaseTimeout: Duration, maxAttempts: Int, now: Date) -> RecoveryAction? {
        let path = layout.runningFile(id)
        guard case .locked(let lock) = JobLock.acquire(path) else { return nil }
        defer { lock.release() }
        guard lock.matches(path) else { return nil }
        let lease = readLease(id)
        if let lease {
            if lease.host != host && !isStale(lease, leaseTimeout: leaseTimeout, now: now) { return nil }
        } else {
            // Claimed but no lease yet: its agent may be on another host and just slow.
            guard let st = QueueFS.lstatInfo(path),
                  now.timeIntervalSince1970 - QueueFS.changeTime(st) > leaseTimeout.seconds else { return nil }
        }
        let lostAttempt = lease?.attempt ?? (previousAttempts(id) + 1)
        if let lease { QueueFS.removeTree(layout.workDirectory(id, token: lease.token)) }
        do {
            if lostAttempt >= maxAttempts {
                let who = lease.map { "agent \($0.agent) on \($0.host), pid \($0.pid)" } ?? "an unknown agent"
                let status = QueueStatusDocument(
                    id: id, state: .error, reason: "agent lost",
                    message: "agent lost: \(who) stopped without finishing attempt \(lostAttempt); gave up after \(lostAttempt) attempts",
                    exitCode: 3, finished: now)
                let published = try failWithoutRunning(id: id, lock: lock, status: status, attempt: lostAttempt,
                                                       lease: lease, from: path)
                return .failedAgentLost(id: id, attempts: lostAttempt, path: published)
            }
            try requeue(id: id, lock: lock, attemptsUsed: lostAttempt, lostLease: lease)
            return .requeued(id: id, attempt: lostAttempt)
        } catch {
            return nil
        }
    }

    /// A work folder that holds `result/job.json` whose lock is free was finished by an
    /// agent that died before publishing it: publish it now. Work folders of claims that no
    /// longer exist (no lease names their token) are removed once they are a minute old.
    private func publishOrphanResults(leaseTimeout: Duration, now: Date) -> [RecoveryAction] {
        var actions: [RecoveryAction] = []
        for name in QueueFS.list(layout.work) where !name.hasPrefix(".") {
            guard let dot = name.lastIndex(of: ".") else { continue }
            let id = String(name[..<dot]), token = String(name[name.index(after: dot)...])
            let dir = layout.work + "/" + name
            let result = dir + "/result"
            let jobFile = result + "/job.json"
            let lease = readLease(id)
            let leaseIsThisClaim = lease?.token == token
            // The claim is still running (a runner may copy job.json into its results).
            if leaseIsThisClaim && QueueFS.exists(layout.runningFile(id)) { continue }
            if QueueFS.isRegularFile(jobFile) {
                guard case .locked(let lock) = JobLock.acquire(jobFile) else { continue }
                if let lease, leaseIsThisClaim, lease.host != host,
                   !isStale(lease, leaseTimeout: leaseTimeout, now: now) {
                    lock.release()
                    continue
                }
                let status = QueueJSON.decode(StatusState.self, from: result + "/status.json")
                if status == nil {
                    let doc = QueueStatusDocument(id: id, state: .error, reason: "agent lost",
                                                  message: "agent lost while writing the results", exitCode: 3,
                                                  finished: now)
                    try? QueueFS.writeAtomically(QueueJSON.encode(doc), to: result + "/status.json")
                }
                let toDone = status?.state == "succeeded"
                if let path = try? publish(result, id: id, toDone: toDone) {
                    actions.append(.publishedOrphan(id: id, path: path))
                }
                if leaseIsThisClaim && !QueueFS.exists(layout.runningFile(id)) { unlink(layout.leaseFile(id)) }
                QueueFS.removeTree(dir)
                lock.release()
            } else if !leaseIsThisClaim, let st = QueueFS.lstatInfo(dir),
                      now.timeIntervalSince1970 - QueueFS.modificationTime(st) > 60 {
                QueueFS.removeTree(dir)
            }
        }
        return actions
    }

    /// A lease without its job file is left from a finish or requeue that was interrupted.
    private func dropOrphanLeases() {
        for name in QueueFS.list(layout.running) where name.hasSuffix(".lease") && !name.hasPrefix(".") {
            let id = String(name.dropLast(6))
            guard !QueueFS.exists(layout.runningFile(id)), let lease = readLease(id) else { continue }
            // An unpublished result of this claim is handled by publishOrphanResults.
            if QueueFS.exists(layout.workDirectory(id, token: lease.token) + "/result/job.json") { continue }
            if !QueueFS.exists(layout.runningFile(id)), readLease(id)?.token == lease.token {
                unlink(layout.leaseFile(id))
            }
        }
    }

    /// Cancel requests for claims that are gone (the job finished first), after a grace
    /// period so a request is never dropped before its agent saw it.
    private func dropStaleCancelRequests(now: Date) {
        for name in QueueFS.list(layout.cancel) where !name.hasPrefix(".") {
            let path = layout.cancel + "/" + name
            guard let st = QueueFS.lstatInfo(path),
                  now.timeIntervalSince1970 - QueueFS.modificationTime(st) > 30 else { continue }
            let request = QueueJSON.decode(CancelRequest.self, from: path)
            let lease = readLease(name)
            let live = QueueFS.exists(layout.runningFile(name))
                && (request?.token == nil || request?.token == lease?.token)
            if !live { unlink(path) }
        }
    }
}

/// The one field of a status.json the queue reads back.
struct StatusState: Decodable {
    var state: String
}
