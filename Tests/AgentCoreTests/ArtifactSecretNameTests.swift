import Foundation
import Testing
@testable import AgentCore

/// Artifact names are output too: a file, folder or symlink target named after a secret
/// is refused before anything of it is written, so neither the artifacts tree nor
/// manifest.json or SHA256SUMS can carry the value.
@Suite struct ArtifactSecretNameTests {
    static let hostile = RedactBeforeEncodingTests.hostile

    final class Fixture {
        let root: String
        var workspace: String { root + "/ws" }
        var artifacts: String { root + "/results/artifacts" }

        init() throws {
            root = try ReportsTestSupport.scratch("artifact-names")
            let w = root + "/ws"
            try ReportsTestSupport.write("clean", w, "dist/app")
            try ReportsTestSupport.write("named", w, "dist/\(hostile["amp"]!).txt")
            try ReportsTestSupport.write("deep", w, "dist/\(hostile["ctl"]!)/inner.txt")
            try ReportsTestSupport.write("utf8", w, "dist/\(hostile["utf8"]!).bin")
            try ReportsTestSupport.write("plain", w, "dist/ok.txt")
            // Relative and inside the workspace, so only its target's text is the problem.
            symlink("\(hostile["utf8"]!).bin", w + "/dist/link")
            symlink("ok.txt", w + "/dist/fine")
            try FileManager.default.createDirectory(atPath: root + "/results", withIntermediateDirectories: true)
        }

        deinit { ReportsTestSupport.remove(root) }

        /// Every entry under the artifacts folder (folders too), relative to it.
        func allEntries() -> [String] {
            guard let walker = FileManager.default.enumerator(atPath: artifacts) else { return [] }
            var out: [String] = []
            while let path = walker.nextObject() as? String { out.append(path) }
            return out.sorted()
        }
    }

    static func secrets(_ extra: [String: String] = [:]) -> JobSecrets {
        JobSecrets(SecretStore(values: hostile.merging(extra) { a, _ in a }.mapValues { Array($0.utf8) }))
    }

    @Test func namesAndTargetsHoldingASecretAreRefused() throws {
        let f = try Fixture()
        let collector = ArtifactCollector(workspace: f.workspace, outputDirectory: f.artifacts, scanner: Self.secrets().scanner)
        let result = collector.collectSynchronously([ArtifactRule(name: "dist", paths: ["dist/**"])], jobSucceeded: true)

        let messages = result.errors.map(\.description)
        #expect(messages.contains("artifact \"dist\": dist/dist/***.txt was not kept: its name contains secret \"amp\""))
        #expect(messages.contains("artifact \"dist\": dist/dist/***/inner.txt was not kept: its name contains secret \"ctl\""))
        #expect(messages.contains("artifact \"dist\": dist/dist/***.bin was not kept: its name contains secret \"utf8\""))
        #expect(messages.contains("artifact \"dist\": dist/dist/link was not kept: its symlink target contains secret \"utf8\""))
        #expect(result.errors.count == 4)
        #expect(!result.succeeded)

        // The clean files are kept; nothing named after a secret exists, folders included.
        #expect(f.allEntries() == ["SHA256SUMS", "dist", "dist/dist", "dist/dist/app", "dist/dist/fine", "dist/dist/ok.txt", "manifest.json"])
        let manifest = try String(contentsOfFile: f.artifacts + "/manifest.json", encoding: .utf8)
        let sums = try String(contentsOfFile: f.artifacts + "/SHA256SUMS", encoding: .utf8)
        for document in [manifest, sums, messages.joined(separator: "\n")] {
            RedactBeforeEncodingTests.expectNoLeak(document)
        }
        #expect(manifest.contains("dist/dist/app"))
        #expect(sums.contains("dist/dist/ok.txt"))
    }

    @Test func aRuleNamedAfterASecretKeepsNothing() throws {
        let f = try Fixture()
        let scanner = Self.secrets(["plain": "plainsecret99"]).scanner
        let collector = ArtifactCollector(workspace: f.workspace, outputDirectory: f.artifacts, scanner: scanner)
        let result = collector.collectSynchronously([ArtifactRule(name: "x-plainsecret99", paths: ["dist/app"])],
                                                    jobSucceeded: true)
        #expect(result.errors.map(\.description) == ["artifact \"x-***\": invalid name: it contains secret \"plain\""])
        #expect(f.allEntries().allSatisfy { !$0.contains("plainsecret99") })
        let manifest = try String(contentsOfFile: f.artifacts + "/manifest.json", encoding: .utf8)
        #expect(!manifest.contains("plainsecret99"))
    }

    @Test func contentScannersAcceptEveryName() throws {
        // Scanners that only look at contents (the default `checkName`) change nothing.
        let f = try Fixture()
        let collector = ArtifactCollector(workspace: f.workspace, outputDirectory: f.artifacts,
                                          scanner: ArtifactCollectorTests.RejectSecrets())
        let result = collector.collectSynchronously([ArtifactRule(name: "dist", paths: ["dist/**"])], jobSucceeded: true)
        #expect(result.errors.isEmpty)
        #expect(f.allEntries().contains("dist/dist/\(Self.hostile["amp"]!).txt"))
    }
}
