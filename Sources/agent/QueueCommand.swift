import AgentCore
import ArgumentParser
import AgentSupport
import FoundationEssentials
import Glibc

/// `agent queue`: inspect a queue directory.
struct QueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "Inspect a queue directory.",
        subcommands: [QueueStatusCommand.self]
    )
}

/// `agent queue status JOBS_DIR [--json]`. Exit codes: 0, 2 when JOBS_DIR is not a queue.
struct QueueStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Jobs per state, and each running job with its agent, attempt and age."
    )

    @Argument(help: "The queue directory.")
    var jobsDir: String

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        guard isDirectory(atPath: jobsDir) else {
            fail("\(jobsDir): no such directory", code: 2)
        }
        let report = QueueStatusReport(layout: QueueLayout(root: jobsDir))
        print(json ? report.json() : report.text())
    }
}
