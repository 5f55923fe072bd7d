import AgentCore
import ArgumentParser
import AgentSupport
import FoundationEssentials
import Glibc

/// `agent validate JOB.json [--json]`: checks a job file without running anything.
///
/// Exit 0 with a one-line summary on stdout, or exit 2 with `agent: <file>: <path>: <message>`
/// on stderr. With `--json`, stdout gets one JSON object either way:
/// `{"valid":true,"id":...,"steps":[...]}` or `{"valid":false,"file":...,"path":...,"message":...}`.
struct ValidateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check a job file (format version 1) without running it.",
        discussion: "Exit codes: 0 the job is valid, 2 it is not (the message names the file and the JSON path)."
    )

    @Argument(help: "The job file.")
    var job: String

    @Flag(help: "Print the result as one JSON object on stdout.")
    var json = false

    func run() async throws {
        do {
            let spec = try JobParser.parse(fileAt: job)
            print(json ? Self.jsonSummary(spec) : Self.summary(spec, file: job))
        } catch let error as JobValidationError {
            printToStandardError("agent: \(error)\n")
            if json {
                var o = "{\"valid\":false,\"file\":\(Self.quoted(error.file ?? job))"
                o += ",\"path\":\(Self.quoted(error.path)),\"message\":\(Self.quoted(error.message))}"
                print(o)
            }
            throw ExitCode(2)
        }
    }

    /// `job.json: valid: job "hello", 3 steps (build, test, cleanup), image host, workspace /src`
    static func summary(_ spec: JobSpec, file: String) -> String {
        let names = spec.steps.map(\.name).joined(separator: ", ")
        var line = "\(file): valid: job \(quoted(spec.id)), \(spec.steps.count) step\(spec.steps.count == 1 ? "" : "s") (\(names))"
        switch spec.image {
        case .host: line += ", image host"
        case .rootfs(let p): line += ", image rootfs \(p)"
        case .image(let ref): line += ", image \(ref)"
        }
        if let w = spec.workspace { line += ", workspace \(w)" }
        if !spec.services.isEmpty { line += ", services " + spec.services.map { "\($0.alias) (\($0.displayName))" }.joined(separator: ", ") }
        return line
    }

    static func jsonSummary(_ spec: JobSpec) -> String {
        let steps = spec.steps.map { s in
            "{\"name\":\(quoted(s.name)),\"type\":\(quoted(s.type.rawValue)),\"when\":\(quoted(s.when.rawValue)),\"command\":\(quoted(s.run.display))}"
        }.joined(separator: ",")
        var o = "{\"valid\":true,\"id\":\(quoted(spec.id)),\"steps\":[\(steps)]"
        if let w = spec.workspace { o += ",\"workspace\":\(quoted(w))" }
        if !spec.services.isEmpty {
            o += ",\"services\":[" + spec.services.map { s in
                "{\"alias\":\(quoted(s.alias)),\"aliases\":[\(s.aliases.map(quoted).joined(separator: ","))],\"name\":\(quoted(s.displayName))}"
            }.joined(separator: ",") + "]"
        }
        o += ",\"secrets\":[\(spec.secrets.keys.sorted().map(quoted).joined(separator: ","))]"
        o += ",\"artifacts\":[\(spec.artifacts.map { quoted($0.name) }.joined(separator: ","))]}"
        return o
    }

    static func quoted(_ s: String) -> String { jsonQuoted(s) }
}
