import ArgumentParser

/// STUB: `agent debug redact`, a benchmark helper.
struct DebugRedactCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "redact", abstract: "(not implemented yet)")

    func run() async throws {
        throw ExitCode(125)
    }
}
