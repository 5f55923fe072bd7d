import ArgumentParser
import AgentCore
import AgentSupport
import CAgentSys
#if canImport(Glibc)
import Glibc
#endif

/// `agent`: a rootless CI build agent. Each subcommand lives in its own file.
@main
struct Agent: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "A rootless CI build agent: runs jobs in unprivileged Linux containers.",
        version: AgentVersion.current,
        subcommands: [
            ExecCommand.self,
            ImageCommand.self,
            LoginCommand.self,
            LogoutCommand.self,
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

    /// Every command first makes the agent non-dumpable and its core-file limit 0: the
    /// agent holds secrets (job secrets, redaction tables) that must never reach a core
    /// file, and a non-dumpable process's /proc files (`environ`, `mem`, `fd`) are owned
    /// by root, out of reach of other processes of the same user. Children inherit both
    /// (the container's init and commands: execve makes them dumpable again, a command
    /// needs no secrets of the agent's). Then the usual ArgumentParser entry point.
    static func main() async {
        if agent_disable_core_dumps() != 0 {
            printToStandardError("agent: warning: cannot disable core dumps: \(String(cString: strerror(errno)))\n")
        }
        // `agent exec` in its plain form skips swift-argument-parser (see ExecFlags.parseFast).
        if let exec = ExecFlags.fastPath(CommandLine.arguments) {
            // On the main thread, which lives as long as the process: the container's parent thread.
            do { try exec.run() } catch { exit(withError: error) }
        }
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
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
