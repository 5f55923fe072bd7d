import ArgumentParser

/// STUB: `agent cancel`, implemented by its issue.
struct CancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cancel", abstract: "(not implemented yet)")

    func run() async throws {
        throw ExitCode(125)
    }
}
