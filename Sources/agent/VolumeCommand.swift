import ArgumentParser

/// STUB: `agent volume`, implemented by its issue.
struct VolumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "volume", abstract: "(not implemented yet)")

    func run() async throws {
        throw ExitCode(125)
    }
}
