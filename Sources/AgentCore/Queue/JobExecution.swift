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
        let beat = Task { [store, job, heartbeat] in
            while !Task.isCancelled {
                try? await Task.sleep(for: heartbeat)
                if Task.isCancelled { break }
                store.heartbeat(job)
            }
        }
        defer { beat.cancel() }
        let layout = store.layout
        let jobFile = layout.runningFile(job.id)
        do {
            if let problem = Self.notAJobObject(jobFile, id: job.id) {
                let status = QueueStatusDocument(id: job.id, state: .error, reason: "invalid job", message: problem,
                                                 exitCode: 2, finished: Date())
                let path = try store.failWithoutRunning(id: job.id, lock: job.lock, status: status, attempt: job.attempt,
                                                        lease: store.readLease(job.id), from: jobFile)
                logger.error("invalid job", metadata: ["reason": .string(problem), "path": .string(path)])
                return .published(path)
            }
            let work = try store.makeWorkDirectory(id: job.id, token: job.token)
            let result = work + "/result"
            let outcome = await executor.execute(jobFile: jobFile, outputDirectory: result)
            let code = outcome.exitCode
            if code == 130, Task.isCancelled, await cancelledForShutdown() {
                QueueFS.removeTree(work)
                // A run cut short by a shutdown is not the job's fault: same attempt again.
                try store.requeue(id: job.id, lock: job.lock, attemptsUsed: job.attempt - 1, lostLease: nil)
                job.lock.release()
                logger.info("requeued for shutdown")
                return .requeued
            }
            if !QueueFS.isDirectory(result) { try writeFallbackStatus(result, code: code, message: outcome.message) }
            let record = QueueRecord(id: job.id, agent: store.agentID, host: store.host, attempt: job.attempt,
                                     claimed: job.claimed, finished: Date(), exitCode: code, outcome: "")
            let path = try store.finish(id: job.id, lock: job.lock, jobFile: jobFile, result: result, record: record,
                                        workDirectory: work, toDone: code == 0)
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
    private func writeFallbackStatus(_ result: String, code: Int32, message runnerMessage: String?) throws {
        if mkdir(result, 0o755) != 0 && errno != EEXIST {
            throw QueueError.io(operation: "mkdir", path: result, errno: errno)
        }
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
        try QueueFS.writeAtomically(QueueJSON.encode(doc), to: result + "/status.json")
    }

    /// Nil when the file holds a JSON object; else why not, naming the file. Validation
    /// beyond that is the runner's (it answers exit 2 with the `agent validate` message).
    static func notAJobObject(_ path: String, id: String) -> String? {
        let name = "\(id).json"
        guard let data = QueueFS.read(path) else { return "\(name): cannot be read" }
        do {
            if case .object = try JSONValue.parse(data) { return nil }
            return "\(name): a job must be a JSON object"
        } catch {
            return "\(name): not valid JSON: \(error)"
        }
    }
}
