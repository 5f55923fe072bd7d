import AgentCore
import ArgumentParser
import AgentSupport
import FoundationEssentials
import Glibc

/// `agent run-job JOB.json`: runs one job and writes its results folder.
///
/// Exit codes (the contract a CI runner relies on): 0 the job succeeded, 1 the job failed
/// or timed out, 2 invalid job or usage, 3 agent or infrastructure error, 130 cancelled.
struct RunJobCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run-job",
        abstract: "Run a job file; write status, logs, JUnit XML and artifacts to a results folder.",
        discussion: "Exit codes: 0 succeeded, 1 failed or timed out, 2 invalid job or usage, 3 agent error, 130 cancelled."
    )

    @Argument(help: "The job file (JSON, format version 1).")
    var job: String

    @Option(name: .shortAndLong, help: "Results folder (default: ./results/<job-id>).")
    var output: String?

    @Flag(help: "Replace a non-empty results folder.")
    var force = false

    @Option(help: "Progress on stderr: auto, plain, tty or json.")
    var progress: ProgressMode = .auto

    @Option(name: .customLong("secret"), help: "A build secret, BuildKit syntax: id=ID[,src=FILE|,env=VAR]. Repeatable.")
    var secrets: [String] = []

    @Option(help: "Seconds between SIGTERM and SIGKILL for timed-out or cancelled steps.")
    var grace: Double = 10

    @Option(help: "Cap of each step's log in bytes (output past it is drained and counted, not written).")
    var logLimit: Int = 16 << 20

    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard grace >= 0 else { throw ValidationError("--grace must not be negative") }
        guard logLimit >= 1024 else { throw ValidationError("--log-limit must be at least 1024 bytes") }
    }

    func run() async throws {
        try refuseRoot(common.allowRoot)
        var options = try common.runnerOptions(secretFlags: secrets, force: force, grace: grace)
        options.logCapBytes = logLimit
        let mode = progress
        let runner = JobRunner(options: options, renderer: { makeProgressRenderer(mode: mode, fileDescriptor: 2) })
        let jobFile = job
        let out = output
        // SIGINT/SIGTERM cancel the job: the running step is terminated (SIGTERM, grace,
        // SIGKILL), the rest are marked cancelled, results are still written; exit 130.
        // Installed before the job starts, so no signal can find the default disposition.
        let signals = try ShutdownSignals.stream()
        let task = Task { await runner.run(jobFile: jobFile, outputDirectory: out) }
        let watcher = Task {
            for await _ in signals {
                task.cancel()
            }
        }
        let outcome = await task.value
        watcher.cancel()
        if let message = outcome.message, outcome.exitCode == 2 || outcome.exitCode == 3 {
            printToStandardError("agent: \(message)\n")
        }
        if let path = outcome.resultsPath, mode != .json {
            printToStandardError("agent: results in \(path)\n")
        }
        throw ExitCode(outcome.exitCode)
    }
}

extension ProgressMode: ExpressibleByArgument {}
