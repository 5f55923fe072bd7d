import ArgumentParser

/// STUB: `agent debug collect-artifacts`, a benchmark helper.
struct DebugCollectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "collect-artifacts", abstract: "(not implemented yet)")

    func run() async throws {
        throw ExitCode(125)
    }
}
