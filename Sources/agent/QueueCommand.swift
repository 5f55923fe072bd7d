import ArgumentParser

/// STUB: `agent queue`, implemented by its issue.
struct QueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "queue", abstract: "(not implemented yet)")

    func run() async throws {
        throw ExitCode(125)
    }
}
