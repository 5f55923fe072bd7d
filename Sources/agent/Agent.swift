import ArgumentParser
import AgentCore

/// `agent`: a rootless CI build agent. Each subcommand lives in its own file.
@main
struct Agent: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "A rootless CI build agent: runs jobs in unprivileged Linux containers.",
        version: AgentVersion.current,
        subcommands: [
            ExecCommand.self,
            RunJobCommand.self,
            ValidateCommand.self,
            WatchCommand.self,
            CancelCommand.self,
            QueueCommand.self,
            CacheCommand.self,
            VolumeCommand.self,
            DebugCommand.self,
        ]
    )
}

/// Hidden helpers for benchmarks and debugging; each subcommand lives in its own file.
struct DebugCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "debug",
        abstract: "Internal helpers for benchmarks.",
        shouldDisplay: false,
        subcommands: [DebugRedactCommand.self, DebugCollectCommand.self, DebugSeccompCommand.self]
    )
}
