import ArgumentParser

/// STUB: `agent run-job`, implemented by its issue.
struct RunJobCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run-job", abstract: "(not implemented yet)")

    func run() async throws {
        throw ExitCode(125)
    }
}
