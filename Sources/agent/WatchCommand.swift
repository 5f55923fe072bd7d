import ArgumentParser

/// STUB: `agent watch`, implemented by its issue.
struct WatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "watch", abstract: "(not implemented yet)")

    func run() async throws {
        throw ExitCode(125)
    }
}
