import Foundation
import Testing

/// Helpers shared by the JUnit and artifact tests: scratch folders, files, and running
/// real tools (`xmllint`, `sha256sum`) on what we wrote.
enum ReportsTestSupport {
    struct ProcessResult {
        var status: Int32
        var output: String
    }

    /// Runs `argv` (looked up in PATH) and returns its exit status and stdout+stderr.
    static func run(_ argv: [String], in directory: String? = nil) throws -> ProcessResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = argv
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return ProcessResult(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
    }

    /// A fresh folder under the temporary directory.
    static func scratch(_ label: String) throws -> String {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("agent-\(label)-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func remove(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Writes `contents` to `root/relative`, creating folders, with `mode`.
    static func write(_ contents: String, _ root: String, _ relative: String, mode: mode_t = 0o644) throws {
        let path = root + "/" + relative
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try Data(contents.utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, mode)
    }

    /// The strict Ant JUnit schema: `$AGENT_FIXTURES/junit/JUnit.xsd` when set (ci/test.sh),
    /// else `<repo>/../shared/fixtures/junit/JUnit.xsd` found from this file's path.
    static func junitSchema(filePath: String = #filePath) -> String? {
        var candidates: [String] = []
        if let fixtures = ProcessInfo.processInfo.environment["AGENT_FIXTURES"] {
            candidates.append(fixtures + "/junit/JUnit.xsd")
        }
        let repo = URL(fileURLWithPath: filePath).deletingLastPathComponent()  // AgentCoreTests
            .deletingLastPathComponent().deletingLastPathComponent()  // repo
        candidates.append(repo.deletingLastPathComponent().appendingPathComponent("shared/fixtures/junit/JUnit.xsd").path)
        return candidates.first { FileManager.default.fileExists(atPath: $0) }
    }

    /// Validates `xml` with `xmllint --noout --schema` against the strict schema; returns
    /// xmllint's output when it is invalid, nil when valid.
    static func schemaProblems(_ xml: String) throws -> String? {
        guard let schema = junitSchema() else {
            return "JUnit.xsd not found (set AGENT_FIXTURES or keep ../shared/fixtures next to the repo)"
        }
        let dir = try scratch("xsd")
        defer { remove(dir) }
        let file = dir + "/junit.xml"
        try Data(xml.utf8).write(to: URL(fileURLWithPath: file))
        let result = try run(["xmllint", "--noout", "--schema", schema, file])
        return result.status == 0 ? nil : result.output
    }
}
