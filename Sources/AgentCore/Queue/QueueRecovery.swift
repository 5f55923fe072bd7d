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
    /// `maxAttempts`). A job is lost when its flock is free and its lease is from this host
    /// (same `HostIdentity`: machine id and boot id), or (other hosts, whose locks NFS may
    /// not show) its heartbeat is older than `leaseTimeout`. Runs at start-up and at every
    /// rescan; safe to run from any number of agents at once, because each action is taken
    /// while holding the job's flock. Also sweeps stale temporary files (bad entries of
    /// incoming/ are filed by `fileBadEntries`, which the watcher runs before every claim).
    public func recover(leaseTimeout: Duration, maxAttempts: Int, now: Date = Date()) -> [RecoveryAction] {
        guard let f = try? folders() else { return [] }
        var actions: [RecoveryAction] = []
        actions += publishOrphanResults(f, leaseTimeout: leaseTimeout, now: now)
        for id in runningJobs() {
            if let action = recoverRunning(f, id, leaseTimeout: leaseTimeout, maxAttempts: maxAttempts, now: now) {
                actions.append(action)
            }
        }
        dropOrphanLeases(f)
        dropStaleCancelRequests(f, now: now)
        sweepTemporaryFiles(f, now: now)
        return actions
    }

    /// True when a lease from another host has not been refreshed within `leaseTimeout`.
    func isStale(_ lease: Lease, leaseTimeout: Duration, now: Date) -> Bool {
        now.timeIntervalSince(lease.heartbeat) > leaseTimeout.seconds
    }

    /// True when the lease's flock can be believed: it was taken on this host and boot.
    func isThisHost(_ lease: Lease) -> Bool { lease.hostID == hostID }

    private func recoverRunning(_ f: QueueFolders, _ id: String, leaseTimeout: Duration, maxAttempts: Int,
                                now: Date) -> RecoveryAction? {
        let name = id + ".json"
        guard case .locked(let lock) = JobLock.acquire(f.running, name) else { return nil }
        defer { lock.release() }
        guard lock.matches(f.running, name) else { return nil }
        let lease = readLease(id)
        if let lease {
            if !isThisHost(lease) && !isStale(lease, leaseTimeout: leaseTimeout, now: now) { return nil }
        } else {
            // Claimed but no lease yet: its agent may be on another host and just slow.
            guard let st = QueueFS.lstat(f.running, name),
                  now.timeIntervalSince1970 - QueueFS.changeTime(st) > leaseTimeout.seconds else { return nil }
        }
        let lostAttempt = lease?.attempt ?? (previousAttempts(id) + 1)
        if let lease { QueueFS.removeTree(f.work, id + "." + lease.token) }
        do {
            if lostAttempt >= maxAttempts {
                let who = lease.map { "agent \($0.agent) on \($0.host), pid \($0.pid)" } ?? "an unknown agent"
                let status = QueueStatusDocument(
                    id: id, state: .error, reason: "agent lost",
                    message: "agent lost: \(who) stopped without finishing attempt \(lostAttempt); gave up after \(lostAttempt) attempts",
                    exitCode: 3, finished: now)
                let published = try failWithoutRunning(id: id, lock: lock, status: status, attempt: lostAttempt,
                                                       lease: lease, fromDir: f.running, name: name)
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
    /// longer exist (no lease names their token) are removed once they are a minute old,
    /// with whatever they hold (the runner's `.result.tmp-*` folder of a killed run too).
    private func publishOrphanResults(_ f: QueueFolders, leaseTimeout: Duration, now: Date) -> [RecoveryAction] {
        var actions: [RecoveryAction] = []
        for name in QueueFS.list(f.work) where !name.hasPrefix(".") {
            guard let dot = name.lastIndex(of: ".") else { continue }
            let id = String(name[..<dot]), token = String(name[name.index(after: dot)...])
            let lease = readLease(id)
            let leaseIsThisClaim = lease?.token == token
            // The claim is still running (a runner may copy job.json into its results).
            if leaseIsThisClaim && QueueFS.exists(f.running, id + ".json") { continue }
            let age = QueueFS.lstat(f.work, name).map { now.timeIntervalSince1970 - QueueFS.modificationTime($0) } ?? 0
            let dir = openat(f.work, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard dir >= 0 else {
                if age > 60 { QueueFS.removeTree(f.work, name) }
                continue
            }
            defer { close(dir) }
            let result = openat(dir, "result", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            let jobKind = result >= 0 ? QueueFS.lstat(result, "job.json").map { $0.st_mode & S_IFMT } : nil
            defer { if result >= 0 { close(result) } }
            if jobKind == S_IFREG {
                guard case .locked(let lock) = JobLock.acquire(result, "job.json") else { continue }
                defer { lock.release() }
                if let lease, leaseIsThisClaim, !isThisHost(lease), !isStale(lease, leaseTimeout: leaseTimeout, now: now) {
                    continue
                }
                if let path = publishOrphan(f, id: id, work: (name, dir), result: result, now: now) {
                    actions.append(.publishedOrphan(id: id, path: path))
                }
                if leaseIsThisClaim && !QueueFS.exists(f.running, id + ".json") { unlinkat(f.running, id + ".lease", 0) }
                QueueFS.removeTree(f.work, name)
            } else if jobKind != nil && !leaseIsThisClaim && age > 60 {
                // A bad entry being filed (not a regular file: no lock to take) whose agent died.
                if let path = publishOrphan(f, id: id, work: (name, dir), result: result, now: now) {
                    actions.append(.publishedOrphan(id: id, path: path))
                }
                QueueFS.removeTree(f.work, name)
            } else if !leaseIsThisClaim && age > 60 {
                QueueFS.removeTree(f.work, name)
            }
        }
        return actions
    }

    private func publishOrphan(_ f: QueueFolders, id: String, work: (name: String, fd: Int32), result: Int32,
                               now: Date) -> String? {
        let status = QueueJSON.decode(StatusState.self, result, "status.json")
        if status == nil {
            let doc = QueueStatusDocument(id: id, state: .error, reason: "agent lost",
                                          message: "agent lost while writing the results", exitCode: 3, finished: now)
            try? QueueFS.writeAtomically(QueueJSON.encode(doc), result, "status.json",
                                         shown: f.shown(f.work, work.name + "/result/status.json"))
        }
        QueueFS.syncDirectory(result)
        return try? publish(work, id: id, toDone: status?.state == "succeeded")
    }

    /// A lease without its job file is left from a finish or requeue that was interrupted.
    private func dropOrphanLeases(_ f: QueueFolders) {
        for name in QueueFS.list(f.running) where name.hasSuffix(".lease") && !name.hasPrefix(".") {
            let id = String(name.dropLast(6))
            guard !QueueFS.exists(f.running, id + ".json"), let lease = readLease(id) else { continue }
            // An unpublished result of this claim is handled by publishOrphanResults.
            if hasResultJob(f, id + "." + lease.token) { continue }
            if !QueueFS.exists(f.running, id + ".json"), readLease(id)?.token == lease.token {
                unlinkat(f.running, name, 0)
            }
        }
    }

    /// True when `.work/<workName>/result/job.json` exists (a result waiting to be published).
    private func hasResultJob(_ f: QueueFolders, _ workName: String) -> Bool {
        let dir = openat(f.work, workName, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard dir >= 0 else { return false }
        defer { close(dir) }
        let result = openat(dir, "result", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard result >= 0 else { return false }
        defer { close(result) }
        return QueueFS.exists(result, "job.json")
    }

    /// Cancel requests for claims that are gone (the job finished first), after a grace
    /// period so a request is never dropped before its agent saw it.
    private func dropStaleCancelRequests(_ f: QueueFolders, now: Date) {
        for name in QueueFS.list(f.cancel) where !name.hasPrefix(".") {
            guard let st = QueueFS.lstat(f.cancel, name),
                  now.timeIntervalSince1970 - QueueFS.modificationTime(st) > 30 else { continue }
            let request = QueueJSON.decode(CancelRequest.self, f.cancel, name)
            let lease = readLease(name)
            let live = QueueFS.exists(f.running, name + ".json")
                && (request?.token == nil || request?.token == lease?.token)
            if !live { unlinkat(f.cancel, name, 0) }
        }
    }

    /// How old a temporary file must be before it is taken as left by a dead writer. A
    /// live one exists for milliseconds (write, fsync, rename); a runner's temporary results
    /// folder for as long as its job runs, but those live inside the claim's work folder,
    /// which goes with its claim.
    static let staleTemporaryAge: Double = 600

    /// Removes the queue's own temporary files (`.tmp-*`) in every folder it writes, and
    /// dotted entries of `.work`, that are older than `staleTemporaryAge`: what a writer
    /// killed between create and rename left behind.
    private func sweepTemporaryFiles(_ f: QueueFolders, now: Date) {
        for dir in [f.running, f.attempts, f.cancel, f.done, f.failed, f.work] {
            for name in QueueFS.list(dir) where name.hasPrefix(".") {
                guard QueueFS.isTempName(name) || dir == f.work || ResultsTemporaryName.matches(name),
                      let st = QueueFS.lstat(dir, name),
                      now.timeIntervalSince1970 - QueueFS.modificationTime(st) > Self.staleTemporaryAge else { continue }
                QueueFS.removeTree(dir, name)
            }
        }
    }
}

/// The runner's temporary results folders: `.NAME.tmp-XXXXXX` (see `ResultsFolder`).
enum ResultsTemporaryName {
    static func matches(_ name: String) -> Bool {
        name.hasPrefix(".") && name.contains(".tmp-")
    }
}

/// The one field of a status.json the queue reads back.
struct StatusState: Decodable {
    var state: String
}
