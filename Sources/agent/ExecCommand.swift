import ArgumentParser

/// STUB: `agent exec`, implemented by its issue.
struct ExecCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "exec", abstract: "(not implemented yet)")

    func run() async throws {
        throw ExitCode(125)
    }
}
