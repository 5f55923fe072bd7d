import ArgumentParser

/// STUB: `agent validate`, implemented by its issue.
struct ValidateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "validate", abstract: "(not implemented yet)")

    func run() async throws {
        throw ExitCode(125)
    }
}
