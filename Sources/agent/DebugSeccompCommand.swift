import ArgumentParser

/// STUB: `agent debug seccomp`, a benchmark helper.
struct DebugSeccompCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "seccomp", abstract: "(not implemented yet)")

    func run() async throws {
        throw ExitCode(125)
    }
}
