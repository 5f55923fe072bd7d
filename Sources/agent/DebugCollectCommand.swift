import ArgumentParser
import AgentCore
import AgentSupport
import FoundationEssentials
import Glibc

/// `agent debug collect-artifacts`: runs the artifact collector on a folder, outside any
/// job, for `ci/bench/artifacts.sh`. Exit 0 collected, 1 collection failed (errors
/// printed), 2 bad arguments (e.g. an absolute or `..` pattern).
struct DebugCollectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collect-artifacts",
        abstract: "Collect artifacts from a folder into DIR/<name>/ with manifest.json and SHA256SUMS."
    )

    @Option(help: "The folder to collect from (stands in for a job's workspace).")
    var workspace: String

    @Option(name: .customLong("path"), help: "A glob relative to the workspace (repeatable).")
    var paths: [String] = []

    @Option(help: "A glob to leave out (repeatable).")
    var exclude: [String] = []

    @Option(name: .customShort("o"), help: "The artifacts folder to write (like results/artifacts).")
    var output: String

    @Option(help: "The artifact's name (its folder under the output).")
    var name: String = "artifacts"

    @Option(help: "Budget in bytes.")
    var budget: UInt64 = ArtifactCollector.defaultBudget

    @Option(help: "How files are copied: read-write or copy-file-range.")
    var strategy: String = ArtifactCopyStrategy.readWrite.rawValue

    func run() async throws {
        guard !paths.isEmpty else {
            throw ValidationError("give at least one --path GLOB")
        }
        for pattern in paths + exclude {
            do {
                _ = try GlobPattern(pattern)
            } catch {
                printToStandardError("agent: \(error)\n")
                throw ExitCode(2)
            }
        }
        guard let copyStrategy = ArtifactCopyStrategy(rawValue: strategy) else {
            throw ValidationError("--strategy must be one of: \(ArtifactCopyStrategy.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var rule = ArtifactRule(name: name, paths: paths)
        rule.exclude = exclude
        rule.when = .always
        let collector = ArtifactCollector(workspace: workspace, outputDirectory: output, budget: budget,
                                          strategy: copyStrategy)
        let result = await collector.collect([rule], jobSucceeded: true)
        for warning in result.warnings {
            printToStandardError("warning: \(warning)\n")
        }
        for error in result.errors {
            printToStandardError("error: \(error)\n")
        }
        print("collected \(result.files) files, \(result.bytes) bytes")
        if !result.succeeded { throw ExitCode(1) }
    }
}
