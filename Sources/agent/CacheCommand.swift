import ArgumentParser

/// STUB: `agent cache`, implemented by its issue.
struct CacheCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cache", abstract: "(not implemented yet)")

    func run() async throws {
        throw ExitCode(125)
    }
}
