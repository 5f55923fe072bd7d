import AgentSupport
import FoundationEssentials
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// `agent watch JOBS_DIR`: pulls jobs from a queue directory and hands each to a
/// `JobExecuting`, at most `concurrency` at a time, until asked to stop.
///
/// Wake-ups come from inotify on `incoming/` and `cancel/`, from a rescan every
/// `rescanInterval` (which also runs crash recovery and reads cancel requests), and from
/// jobs finishing. All bookkeeping happens on this actor; the file moves themselves are
/// made safe between agents by `QueueStore` (flock + no-replace rename + inode check).
public actor QueueWatcher {
    /// How `run()` ended.
    public struct Summary: Sendable, Equatable {
        public var finished = 0
        public var requeuedOnShutdown = 0
    }

    private enum Wakeup: Sendable {
        case incoming, cancel, tick, jobFinished, shutdown
    }

    private enum StopReason { case userCancel, shutdown }

    private struct Running {
        var job: ClaimedJob
        var task: Task<Void, Never>
        var stop: StopReason?
    }

    public let store: QueueStore
    public let options: WatchOptions
    private let executor: any JobExecuting
    private let logger: Logger
    private let wakeups: AsyncStream<Wakeup>
    private let wake: AsyncStream<Wakeup>.Continuation
    private let signals = SignalCounter()

    private var running: [String: Running] = [:]
    private var stopping = false
    private var summary = Summary()
    private var graceTask: Task<Void, Never>?
    private var warnedNames = Set<String>()

    public init(jobsDirectory: String, options: WatchOptions, executor: any JobExecuting, logger: Logger) {
        self.store = QueueStore(layout: QueueLayout(root: jobsDirectory), agentID: options.agentID, host: options.host,
                                hostID: options.hostID)
        self.options = options
        self.executor = executor
        var l = logger
        l[metadataKey: "agent"] = .string(options.agentID)
        self.logger = l
        (wakeups, wake) = AsyncStream<Wakeup>.makeStream()
    }

    /// Asks the watcher to stop; callable from any thread (a signal handler's queue).
    /// The first request stops claiming and lets running jobs finish for up to `grace`,
    /// then cancels and requeues them; a second request cancels and requeues at once.
    public nonisolated func requestShutdown() {
        signals.increment()
        wake.yield(.shutdown)
    }

    /// Runs until a shutdown request has been honoured and every job has finished or been
    /// requeued. Throws only for a queue directory it cannot set up.
    public func run() async throws -> Summary {
        try options.validate()
        // The folders are opened once, here; everything after goes through these descriptors
        // (inotify too, through /proc/self/fd), so a folder swapped later is never followed.
        let f = try store.folders()
        let watcher = try DirectoryWatcher([(QueueFolders.descriptorPath(f.incoming, "."), "incoming"),
                                            (QueueFolders.descriptorPath(f.cancel, "."), "cancel")])
        let forward = Task { [wake] in
            for await tag in watcher.events { wake.yield(tag == "cancel" ? .cancel : .incoming) }
        }
        let ticker = Task { [wake, interval = options.rescanInterval] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                wake.yield(.tick)
            }
        }
        defer {
            watcher.stop()
            forward.cancel()
            ticker.cancel()
            graceTask?.cancel()
        }
        logger.info("watching", metadata: ["jobs_dir": .string(store.layout.root),
                                           "concurrency": .stringConvertible(options.concurrency)])
        recover()
        fill()
        if signals.count > 0 { handleShutdown() }
        for await wakeup in wakeups {
            switch wakeup {
            case .incoming: fill()
            case .cancel: checkCancelRequests()
            case .tick:
                recover()
                checkCancelRequests()
                fill()
            case .jobFinished: fill()
            case .shutdown: handleShutdown()
            }
            if stopping && running.isEmpty { break }
        }
        logger.info("stopped", metadata: ["finished": .stringConvertible(summary.finished),
                                          "requeued": .stringConvertible(summary.requeuedOnShutdown)])
        return summary
    }

    /// Claims queued jobs, oldest first, until `concurrency` are running.
    private func fill() {
        guard !stopping else { return }
        for entry in store.fileBadEntries() {
            logger.error("invalid job", metadata: ["job": .string(entry.id), "name": .string(entry.originalName),
                                                   "reason": .string(entry.message), "path": .string(entry.path)])
        }
        guard running.count < options.concurrency else { return }
        for id in store.queuedJobs() where running[id] == nil {
            guard running.count < options.concurrency else { return }
            guard let job = store.claim(id) else { continue }
            start(job)
        }
    }

    private func start(_ job: ClaimedJob) {
        var log = logger
        log[metadataKey: "job"] = .string(job.id)
        log.info("claimed", metadata: ["attempt": .stringConvertible(job.attempt)])
        let task = Task { [store, executor, options] in
            let outcome = await JobExecution(store: store, executor: executor, job: job,
                                             heartbeat: options.heartbeatInterval, logger: log).run(cancelledForShutdown: {
                await self.stopReasonIsShutdown(job.id)
            })
            self.finished(job.id, outcome: outcome)
        }
        running[job.id] = Running(job: job, task: task, stop: nil)
    }

    private func stopReasonIsShutdown(_ id: String) -> Bool {
        running[id]?.stop == .shutdown
    }

    private func finished(_ id: String, outcome: JobExecution.Outcome) {
        running[id] = nil
        switch outcome {
        case .published: summary.finished += 1
        case .requeued: summary.requeuedOnShutdown += 1
        case .abandoned: break
        }
        wake.yield(.jobFinished)
    }

    /// Cancels the tasks of running jobs that have a cancel request meant for their claim.
    private func checkCancelRequests() {
        guard !running.isEmpty else { return }
        guard let f = try? store.folders() else { return }
        for name in QueueFS.list(f.cancel) where !name.hasPrefix(".") {
            guard var entry = running[name], entry.stop == nil else { continue }
            let request = QueueJSON.decode(CancelRequest.self, f.cancel, name)
            if let token = request?.token, token != entry.job.token { continue }
            logger.info("cancel requested", metadata: ["job": .string(name)])
            entry.stop = .userCancel
            running[name] = entry
            entry.task.cancel()
        }
    }

    private func recover() {
        for action in store.recover(leaseTimeout: options.leaseTimeout, maxAttempts: options.maxAttempts) {
            switch action {
            case .requeued(let id, let attempt):
                logger.warning("agent lost: requeued", metadata: ["job": .string(id), "attempt": .stringConvertible(attempt)])
            case .failedAgentLost(let id, let attempts, let path):
                logger.error("agent lost: failed", metadata: ["job": .string(id), "attempts": .stringConvertible(attempts),
                                                             "path": .string(path)])
            case .publishedOrphan(let id, let path):
                logger.warning("published an unfinished agent's result", metadata: ["job": .string(id), "path": .string(path)])
            }
        }
    }

    private func handleShutdown() {
        let count = signals.count
        if !stopping {
            stopping = true
            logger.info("shutting down: no new jobs", metadata: ["running": .stringConvertible(running.count),
                                                                "grace": .string("\(options.grace)")])
            let grace = options.grace
            graceTask = Task { [wake] in
                try? await Task.sleep(for: grace)
                if !Task.isCancelled { wake.yield(.shutdown) }
            }
            if count < 2 { return }
        }
        // The grace period ran out, or a second signal: cancel now and requeue.
        for (id, var entry) in running where entry.stop == nil {
            logger.warning("cancelling for shutdown; will requeue", metadata: ["job": .string(id)])
            entry.stop = .shutdown
            running[id] = entry
            entry.task.cancel()
        }
    }
}

/// Counts shutdown requests; touched from signal handlers' threads.
final class SignalCounter: @unchecked Sendable {
    private let lock = Lock()
    private var value = 0
    func increment() { lock.lock(); value += 1; lock.unlock() }
    var count: Int { lock.lock(); defer { lock.unlock() }; return value }
}
