import AgentSupport
import FoundationEssentials
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Runs one claimed job to its end: heartbeat, the runner, then publishing the result
/// (or, when a shutdown cancelled it, requeueing the job).
struct JobExecution: Sendable {
    enum Outcome: Sendable, Equatable {
        /// The result folder is in done/ or failed/ at this path.
        case published(String)
        /// Cancelled by a shutdown and put back into incoming/.
        case requeued
        /// Could not be completed (logged); crash recovery will pick the job up.
        case abandoned
    }

    let store: QueueStore
    let executor: any JobExecuting
    let job: ClaimedJob
    let heartbeat: Duration
    let logger: Logger

    /// `cancelledForShutdown` is asked after a cancelled run whether the cancel came from a
    /// shutdown (requeue) rather than `agent cancel` (publish as cancelled).
    func run(cancelledForShutdown: @Sendable () async -> Bool) async -> Outcome {
        let beat: LeaseHeartbeat
        do {
            beat = try LeaseHeartbeat(store: store, job: job, interval: heartbeat, logger: logger)
        } catch {
            job.lock.release()
            logger.error("could not start the heartbeat; recovery will requeue the job", metadata: ["error": .string("\(error)")])
            return .abandoned
        }
        defer { beat.stop() }
        let name = job.id + ".json"
        do {
            let f = try store.folders()
            if let problem = Self.notAJobObject(f, id: job.id) {
                let status = QueueStatusDocument(id: job.id, state: .error, reason: "invalid job", message: problem,
                                                 exitCode: 2, finished: Date())
                beat.stop()
                let path = try store.failWithoutRunning(id: job.id, lock: job.lock, status: status, attempt: job.attempt,
                                                        lease: store.readLease(job.id), fromDir: f.running, name: name)
                logger.error("invalid job", metadata: ["reason": .string(problem), "path": .string(path)])
                return .published(path)
            }
            let work = try store.makeWorkDirectory(id: job.id, token: job.token)
            defer { close(work.fd) }
            // The runner is handed paths. The job file's must be the ordinary one (relative
            // paths in the job resolve against running/), so it is checked to lead to the
            // locked file; the results folder is reached through the work folder's
            // descriptor, so a .work swapped for a symlink cannot redirect it.
            let jobFile = store.layout.runningFile(job.id)
            guard job.lock.matches(path: jobFile) else {
                throw QueueError.invalidEntry(path: jobFile, reason: "no longer leads to the claimed job file "
                                              + "(a folder of the queue was replaced)")
            }
            let result = QueueFolders.descriptorPath(work.fd, "result")
            let outcome = await executor.execute(jobFile: jobFile, outputDirectory: result)
            let code = outcome.exitCode
            if code == 130, Task.isCancelled, await cancelledForShutdown() {
                beat.stop()
                QueueFS.removeTree(f.work, work.name)
                // A run cut short by a shutdown is not the job's fault: same attempt again.
                try store.requeue(id: job.id, lock: job.lock, attemptsUsed: job.attempt - 1, lostLease: nil)
                job.lock.release()
                logger.info("requeued for shutdown")
                return .requeued
            }
            if !QueueFS.isDirectory(work.fd, "result") {
                try writeFallbackStatus(work.fd, shown: f.shown(f.work, work.name + "/result"), code: code,
                                        message: outcome.message)
            }
            let record = QueueRecord(id: job.id, agent: store.agentID, host: store.host, attempt: job.attempt,
                                     claimed: job.claimed, finished: Date(), exitCode: code, outcome: "")
            beat.stop()
            let path = try store.finish(id: job.id, lock: job.lock, fromDir: f.running, name: name, work: work,
                                        record: record, toDone: code == 0)
            logger.info("finished", metadata: ["exit_code": .stringConvertible(code), "path": .string(path)])
            return .published(path)
        } catch {
            job.lock.release()
            logger.error("could not complete the job; recovery will requeue it", metadata: ["error": .string("\(error)")])
            return .abandoned
        }
    }

    /// The runner wrote no results folder (it should, even for an invalid job): write a
    /// status.json with the runner's message, or else what its exit code means.
    private func writeFallbackStatus(_ work: Int32, shown: String, code: Int32, message runnerMessage: String?) throws {
        if mkdirat(work, "result", 0o755) != 0 && errno != EEXIST {
            throw QueueError.io(operation: "mkdir", path: shown, errno: errno)
        }
        let result = openat(work, "result", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if result < 0 { throw QueueError.io(operation: "open", path: shown, errno: errno) }
        defer { close(result) }
        let (state, reason, message): (JobState, String, String)
        switch code {
        case 0: (state, reason, message) = (.succeeded, "succeeded", "the runner reported success but wrote no results")
        case 1: (state, reason, message) = (.failed, "failed", "the job failed (exit 1); the runner wrote no results")
        case 2: (state, reason, message) = (.error, "invalid job", "\(job.id).json: the runner rejected the job (exit 2)")
        case 130: (state, reason, message) = (.cancelled, "cancelled", "cancelled")
        default: (state, reason, message) = (.error, "agent error", "the runner failed with exit code \(code) and wrote no results")
        }
        let doc = QueueStatusDocument(id: job.id, state: state, reason: reason, message: runnerMessage ?? message, exitCode: code,
                                      finished: Date())
        try QueueFS.writeAtomically(QueueJSON.encode(doc), result, "status.json", shown: shown + "/status.json")
    }

    /// Nil when the file holds a JSON object; else why not, naming the file. Validation
    /// beyond that is the runner's (it answers exit 2 with the `agent validate` message).
    static func notAJobObject(_ f: QueueFolders, id: String) -> String? {
        let name = "\(id).json"
        let data: Data
        do {
            data = try QueueFS.read(f.running, name, shown: name)
        } catch QueueError.tooLarge(_, let limit) {
            return "\(name): too large (more than \(limit) bytes)"
        } catch {
            return "\(name): cannot be read: \(error)"
        }
        do {
            if case .object = try JSONValue.parse(data) { return nil }
            return "\(name): a job must be a JSON object"
        } catch {
            return "\(name): not valid JSON: \(error)"
        }
    }
}
