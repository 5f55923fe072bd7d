import AgentCore
import ArgumentParser
import AgentSupport
import FoundationEssentials
import Glibc
import Logging

/// The job runner `agent watch` hands each claimed job to: the same runner as
/// `agent run-job`, without progress output, writing a results folder (status.json with
/// the reason) even for an invalid job so the queue can file it under failed/.
func makeWatchExecutor(common: CommonOptions, secrets: [String], grace: Double, jobsDirectory: String) throws -> any JobExecuting {
    var options = try common.runnerOptions(secretFlags: secrets, force: false, grace: grace)
    options.writeResultsForInvalidJobs = true
    // The queue folder (other jobs' files and results) is never reachable by a job.
    options.queueDirectory = jobsDirectory.hasPrefix("/") ? jobsDirectory : options.workingDirectory + "/" + jobsDirectory
    return JobRunner(options: options)
}

/// `agent watch JOBS_DIR`: pull jobs from a queue directory exactly once.
/// Exit codes: 0 stopped after a clean drain, 2 bad options or JOBS_DIR, 3 agent error.
struct WatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Run jobs from a queue directory (incoming/ → running/ → done/ or failed/).",
        discussion: """
        Producers write JOBS_DIR/incoming/.NAME.json and rename it to NAME.json. Several agents, \
        on one or several hosts, may watch the same directory: each job runs once. SIGTERM or \
        SIGINT stops claiming and lets running jobs finish for up to --grace, then cancels and \
        requeues them; a second signal does that at once. Exit codes: 0 clean stop, 2 bad \
        options or JOBS_DIR, 3 agent error.
        """
    )

    @Argument(help: "The queue directory (its folders are created if missing).")
    var jobsDir: String

    @Option(help: "Jobs run at once.")
    var concurrency: Int = 1

    @Option(help: "Rescan incoming/ this often, for file systems without inotify (e.g. NFS).")
    var rescanInterval: String = "2s"

    @Option(help: "A lease from another host older than this is lost.")
    var leaseTimeout: String = "60s"

    @Option(help: "Attempts before a job whose agent keeps dying goes to failed/ (agent lost).")
    var maxAttempts: Int = 3

    @Option(help: "On SIGTERM/SIGINT, how long running jobs may still take.")
    var grace: String = "10m"

    @Option(help: "This agent's name in leases and logs (default HOST-PID).")
    var agentID: String?

    @Option(help: "Log lines on stderr: text or json.")
    var logFormat: String = "text"

    @Option(help: "Least log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(name: .customLong("secret"), help: "A build secret for every job, BuildKit syntax: id=ID[,src=FILE|,env=VAR]. Repeatable.")
    var secrets: [String] = []

    @Option(help: "Seconds between SIGTERM and SIGKILL for timed-out or cancelled steps.")
    var stepGrace: Double = 10

    @OptionGroup var common: CommonOptions

    @Flag(help: "Check the options and that a job runner is available, then exit (0 ready, 2 bad options, 3 no runner).")
    var check = false

    func run() async throws {
        guard let format = StructuredLogHandler.Format(rawValue: logFormat) else {
            fail("--log-format \(logFormat): expected text or json", code: 2)
        }
        guard let level = Logger.Level(rawValue: logLevel) else {
            fail("--log-level \(logLevel): expected trace, debug, info, notice, warning, error or critical", code: 2)
        }
        var options = WatchOptions(agentID: agentID)
        do {
            options.concurrency = concurrency
            options.maxAttempts = maxAttempts
            options.rescanInterval = try WatchOptions.parseDuration(rescanInterval, option: "--rescan-interval")
            options.leaseTimeout = try WatchOptions.parseDuration(leaseTimeout, option: "--lease-timeout")
            options.grace = try WatchOptions.parseDuration(grace, option: "--grace")
            try options.validate()
        } catch {
            fail("\(error)", code: 2)
        }
        var handler = StructuredLogHandler(label: "agent.watch", format: format)
        handler.logLevel = level
        let logger = Logger(label: "agent.watch", factory: { _ in handler })
        try refuseRoot(common.allowRoot)
        let executor: any JobExecuting
        do {
            executor = try makeWatchExecutor(common: common, secrets: secrets, grace: stepGrace, jobsDirectory: jobsDir)
        } catch {
            fail("\(error)", code: 2)
        }
        if check {
            print("ready")
            return
        }
        let watcher = QueueWatcher(jobsDirectory: jobsDir, options: options, executor: executor, logger: logger)
        // SIGTERM/SIGINT arrive through a self-pipe and are bridged into the watcher's actor.
        let signals: AsyncStream<Int32>
        do { signals = try ShutdownSignals.stream() } catch { fail("\(error)", code: 3) }
        let relay = Task {
            for await sig in signals {
                logger.info("signal received", metadata: ["signal": .stringConvertible(sig)])
                watcher.requestShutdown()
            }
        }
        defer { relay.cancel() }
        do {
            _ = try await watcher.run()
        } catch let error as QueueError {
            switch error {
            case .layout, .invalidOption: fail("\(error)", code: 2)
            default: fail("\(error)", code: 3)
            }
        }
    }
}

/// Prints `agent: message` on stderr and exits with `code`.
func fail(_ message: String, code: Int32) -> Never {
    printToStandardError("agent: \(message)\n")
    exit(code)
}
