import Foundation
import Testing

/// Files the tests read: the repository's `policies/` and Docker's real profile.
enum TestFiles {
    /// The repository root, found from this file's path (Tests/SandboxPolicyTests/...).
    static let repoRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func repoFile(_ relative: String) throws -> Data {
        try Data(contentsOf: repoRoot.appendingPathComponent(relative))
    }

    /// Docker's profile: from `$AGENT_FIXTURES` (set by ci/test.sh), else `../shared/fixtures`
    /// next to the repository.
    static func dockerProfile() throws -> String {
        var candidates: [String] = []
        if let fixtures = ProcessInfo.processInfo.environment["AGENT_FIXTURES"] {
            candidates.append(fixtures + "/seccomp/docker-default.json")
        }
        candidates.append(repoRoot.deletingLastPathComponent().path + "/shared/fixtures/seccomp/docker-default.json")
        for path in candidates where FileManager.default.fileExists(atPath: path) {
            return try String(contentsOfFile: path, encoding: .utf8)
        }
        Issue.record("Docker's seccomp profile not found; looked at \(candidates)")
        throw CocoaError(.fileNoSuchFile)
    }

    /// A fresh empty directory under /tmp.
    static func scratch(_ label: String) throws -> String {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("policy-tests-\(label)-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
