import Foundation
import Testing
@testable import AgentCore

/// Real files, real symlinks, real `sha256sum`: the collector against a scratch workspace.
@Suite struct ArtifactCollectorTests {
    /// A workspace with builds, maps, dotfiles and symlinks in and out of it.
    final class Fixture {
        let root: String
        var workspace: String { root + "/ws" }
        var artifacts: String { root + "/results/artifacts" }

        init() throws {
            root = try ReportsTestSupport.scratch("artifacts")
            let w = root + "/ws"
            try ReportsTestSupport.write("#!/bin/sh\necho app\n", w, "dist/app", mode: 0o755)
            try ReportsTestSupport.write("lib", w, "dist/lib/core.js", mode: 0o640)
            try ReportsTestSupport.write("map", w, "dist/lib/core.js.map")
            try ReportsTestSupport.write("secret-ish", w, "dist/.env", mode: 0o600)
            try ReportsTestSupport.write("tarball", w, "build/app.tar.gz")
            try ReportsTestSupport.write("object", w, "build/app.o")
            try ReportsTestSupport.write("deep", w, "build/x/y/z/report.txt")
            try ReportsTestSupport.write("hidden", w, "build/.cache/report.txt")
            try ReportsTestSupport.write("conf", w, ".config/tool.json")
            try ReportsTestSupport.write("outside", root, "outside/passwd")
            symlink("app", w + "/dist/latest")  // inside, relative
            symlink("../build/app.tar.gz", w + "/dist/tarball")  // inside, via ..
            symlink("/etc/passwd", w + "/dist/abs")  // absolute: outside
            symlink("../../outside/passwd", w + "/dist/escape")  // relative, leaves the workspace
            symlink("../outside", w + "/linkdir")  // a symlinked folder pointing out
            symlink("lib/../../..", w + "/dist/sneaky")  // leaves through a folder
        }

        deinit { ReportsTestSupport.remove(root) }

        func collect(_ rules: [ArtifactRule], jobSucceeded: Bool = true, budget: UInt64 = ArtifactCollector.defaultBudget,
                     scanner: (any ArtifactScanner)? = nil, strategy: ArtifactCopyStrategy = .readWrite) throws -> ArtifactCollection {
            try FileManager.default.createDirectory(atPath: root + "/results", withIntermediateDirectories: true)
            return ArtifactCollector(workspace: workspace, outputDirectory: artifacts, budget: budget, scanner: scanner,
                                     strategy: strategy).collectSynchronously(rules, jobSucceeded: jobSucceeded)
        }

        /// Paths relative to the artifacts folder, with a `@` suffix for symlinks.
        func listing() -> [String] {
            guard let walker = FileManager.default.enumerator(atPath: artifacts) else { return [] }
            var out: [String] = []
            while let path = walker.nextObject() as? String {
                let full = artifacts + "/" + path
                var st = stat()
                lstat(full, &st)
                if st.st_mode & S_IFMT == S_IFLNK { out.append(path + "@") } else if st.st_mode & S_IFMT == S_IFREG { out.append(path) }
            }
            return out.filter { $0 != "manifest.json" && $0 != "SHA256SUMS" }.sorted()
        }
    }

    static func rule(_ name: String, _ paths: [String], exclude: [String] = [], when: StepSpec.When = .onSuccess,
                     required: Bool = false) -> ArtifactRule {
        var r = ArtifactRule(name: name, paths: paths)
        r.exclude = exclude
        r.when = when
        r.required = required
        return r
    }

    @Test func globsExcludesAndDoubleStar() throws {
        let f = try Fixture()
        let result = try f.collect([
            Self.rule("dist", ["dist/**", "build/*.tar.gz"], exclude: ["**/*.map"]),
            Self.rule("reports", ["**/report.txt"]),
        ])
        #expect(result.errors.isEmpty, "\(result.errors)")
        #expect(f.listing() == [
            "dist/build/app.tar.gz", "dist/dist/app", "dist/dist/latest@", "dist/dist/lib/core.js", "dist/dist/tarball@",
            "reports/build/x/y/z/report.txt",
        ])
        #expect(result.files == 4)
        #expect(result.manifest.artifacts.map(\.name) == ["dist", "reports"])
    }

    @Test func dotfilesNeedExplicitPatternsButNamedFoldersAreWhole() throws {
        let f = try Fixture()
        let result = try f.collect([
            Self.rule("wild", ["**/*.json", "**/report.txt", "dist/*"]),
            Self.rule("explicit", [".config/**", "build/.cache/*.txt"]),
            Self.rule("folder", ["dist"], exclude: ["dist/lib"]),
        ])
        #expect(result.errors.isEmpty, "\(result.errors)")
        let listing = f.listing()
        #expect(!listing.contains("wild/.config/tool.json"))
        #expect(!listing.contains("wild/build/.cache/report.txt"))
        #expect(!listing.contains("wild/dist/.env"))
        #expect(listing.contains("wild/dist/app"))
        #expect(listing.contains("explicit/.config/tool.json"))
        #expect(listing.contains("explicit/build/.cache/report.txt"))
        #expect(listing.contains("folder/dist/.env"))  // a named folder is copied whole
        #expect(!listing.contains { $0.hasPrefix("folder/dist/lib") })  // an excluded folder is pruned
    }

    @Test func symlinksOutOfTheWorkspaceAreSkippedInsideOnesKept() throws {
        let f = try Fixture()
        let result = try f.collect([Self.rule("dist", ["dist", "linkdir/*", "linkdir"])])
        #expect(result.errors.isEmpty, "\(result.errors)")
        let out = f.artifacts + "/dist"
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: out + "/dist/latest") == "app")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: out + "/dist/tarball") == "../build/app.tar.gz")
        for name in ["abs", "escape", "sneaky"] {
            #expect(!FileManager.default.fileExists(atPath: out + "/dist/" + name))
            #expect(result.warnings.contains { $0.hasPrefix("dist/\(name): symlink to") && $0.contains("outside the workspace") })
        }
        // Neither the symlinked folder nor anything through it.
        #expect(!f.listing().contains { $0.contains("linkdir") || $0.contains("passwd") })
        #expect(result.warnings.contains { $0.contains("linkdir") })
        let symlinks = result.manifest.artifacts[0].files.filter { $0.symlink != nil }.map(\.path)
        #expect(symlinks == ["dist/dist/latest", "dist/dist/tarball"])
    }

    @Test func parentAndAbsolutePatternsAreRejected() throws {
        #expect(throws: GlobPatternError.self) { try GlobPattern("../secrets") }
        #expect(throws: GlobPatternError.self) { try GlobPattern("dist/../../etc") }
        #expect(throws: GlobPatternError.self) { try GlobPattern("/etc/passwd") }
        #expect(throws: GlobPatternError.self) { try GlobPattern("") }
        let f = try Fixture()
        let result = try f.collect([Self.rule("bad", ["dist/**", "../outside/*"]), Self.rule("good", ["build/app.o"])])
        #expect(result.errors.count == 1)
        let message = result.errors.first?.description ?? ""
        #expect(message.contains("artifact \"bad\""))
        #expect(message.contains("\"../outside/*\""))
        #expect(f.listing() == ["good/build/app.o"])
        // The job parser's check names the JSON path.
        #expect(throws: JobValidationError(path: "artifacts[3].exclude[0]",
                                           message: "pattern \"/abs\": absolute paths are not allowed (artifact patterns are relative to the workspace)")) {
            try Self.rule("x", ["a"], exclude: ["/abs"]).validate(jsonPath: "artifacts[3]")
        }
    }

    @Test(arguments: ArtifactCopyStrategy.allCases)
    func manifestMatchesSha256sumAndModesAreKept(strategy: ArtifactCopyStrategy) throws {
        let f = try Fixture()
        // A file bigger than the copy chunk, so hashing spans chunks.
        let big = String(repeating: "0123456789abcdef", count: 200_000)
        try ReportsTestSupport.write(big, f.workspace, "dist/big.bin", mode: 0o604)
        let result = try f.collect([Self.rule("dist", ["dist/**"])], strategy: strategy)
        #expect(result.errors.isEmpty, "\(result.errors)")
        let check = try ReportsTestSupport.run(["sha256sum", "-c", "SHA256SUMS"], in: f.artifacts)
        #expect(check.status == 0, "\(check.output)")
        #expect(check.output.contains("dist/dist/big.bin: OK"))
        // Each manifest entry equals sha256sum's own output for the copied file.
        let files = result.manifest.artifacts[0].files.filter { $0.sha256 != nil }
        let sums = try ReportsTestSupport.run(["sha256sum"] + files.map(\.path), in: f.artifacts)
        for file in files {
            #expect(sums.output.contains("\(file.sha256!)  \(file.path)\n"))
        }
        let modes = Dictionary(uniqueKeysWithValues: files.map { ($0.path, $0.mode!) })
        #expect(modes["dist/dist/app"] == "0755")
        #expect(modes["dist/dist/lib/core.js"] == "0640")
        #expect(modes["dist/dist/big.bin"] == "0604")
        var st = stat()
        lstat(f.artifacts + "/dist/dist/lib/core.js", &st)
        #expect(st.st_mode & 0o7777 == 0o640)
        #expect(files.first { $0.path == "dist/dist/big.bin" }?.size == UInt64(big.utf8.count))
        // manifest.json on disk is the manifest returned.
        let data = try Data(contentsOf: URL(fileURLWithPath: f.artifacts + "/manifest.json"))
        #expect(try JSONDecoder().decode(ArtifactManifest.self, from: data) == result.manifest)
    }

    @Test func budgetExceededKeepsNothingOfThatRule() throws {
        let f = try Fixture()
        try ReportsTestSupport.write(String(repeating: "x", count: 300), f.workspace, "big/file1")
        try ReportsTestSupport.write(String(repeating: "y", count: 300), f.workspace, "big/file2")
        let result = try f.collect([Self.rule("small", ["build/app.o"]), Self.rule("big", ["big"])], budget: 500)
        #expect(result.errors == [.budgetExceeded(rule: "big", budget: 500, needed: 606)])
        let message = result.errors[0].description
        #expect(message.contains("artifact \"big\""))
        #expect(message.contains("budget of 500 bytes"))
        #expect(f.listing() == ["small/build/app.o"])
        #expect(!FileManager.default.fileExists(atPath: f.artifacts + "/big"))
        #expect(result.bytes == 6)
        #expect(ArtifactError.budgetExceeded(rule: "r", budget: 1 << 30, needed: 2 << 30).description.contains("1 GiB"))
    }

    @Test func nothingMatchedWarnsOrFailsWhenRequired() throws {
        let f = try Fixture()
        let result = try f.collect([
            Self.rule("optional", ["nothing/*.zip"]),
            Self.rule("needed", ["missing/**", "*.nope"], required: true),
        ])
        #expect(result.errors == [.nothingMatched(rule: "needed", patterns: ["missing/**", "*.nope"])])
        #expect(result.errors[0].description == "artifact \"needed\" is required but no file matched \"missing/**\", \"*.nope\"")
        #expect(result.warnings.contains("artifact \"optional\": no file matched \"nothing/*.zip\""))
        #expect(!result.succeeded)
    }

    @Test func whenDecidesWhichRulesRun() throws {
        let f = try Fixture()
        let rules = [
            Self.rule("ok", ["build/app.o"], when: .onSuccess),
            Self.rule("logs", ["build/x"], when: .onFailure),
            Self.rule("all", ["dist/app"], when: .always),
        ]
        let succeeded = try f.collect(rules, jobSucceeded: true)
        #expect(succeeded.skippedRules == ["logs"])
        #expect(f.listing() == ["all/dist/app", "ok/build/app.o"])
        ReportsTestSupport.remove(f.artifacts)
        let failed = try f.collect(rules, jobSucceeded: false)
        #expect(failed.skippedRules == ["ok"])
        #expect(f.listing() == ["all/dist/app", "logs/build/x/y/z/report.txt"])
    }

    @Test func badRuleNamesAreErrors() throws {
        let f = try Fixture()
        let result = try f.collect([
            Self.rule("manifest.json", ["dist/app"]), Self.rule("../up", ["dist/app"]),
            Self.rule("a b", ["dist/app"]), Self.rule("dup", ["dist/app"]), Self.rule("dup", ["build/app.o"]),
        ])
        #expect(result.errors.count == 4)
        #expect(f.listing() == ["dup/dist/app"])
    }

    struct RejectSecrets: ArtifactScanner {
        func scan(artifact: String, path: String, fileDescriptor: Int32) throws -> ArtifactScanVerdict {
            var buffer = [UInt8](repeating: 0, count: 64)
            let n = read(fileDescriptor, &buffer, buffer.count)
            let text = String(decoding: buffer[0..<max(n, 0)], as: UTF8.self)
            if text.contains("secret") { return .reject("contains the value of secret \"token\"") }
            if text.contains("lib") { return .warning("looks like a library") }
            return .clean
        }
    }

    @Test func scannerSeesEachCopyAndCanReject() throws {
        let f = try Fixture()
        let result = try f.collect([Self.rule("dist", ["dist"])], scanner: RejectSecrets())
        #expect(result.errors == [.rejected(rule: "dist", path: "dist/dist/.env", reason: "contains the value of secret \"token\"")])
        #expect(!f.listing().contains("dist/dist/.env"))
        #expect(f.listing().contains("dist/dist/app"))
        #expect(result.warnings.contains("dist/dist/lib/core.js: looks like a library"))
        #expect(!result.manifest.artifacts[0].files.contains { $0.path == "dist/dist/.env" })
    }

    @Test func asyncCollectAndGlobSearch() async throws {
        let f = try Fixture()
        try FileManager.default.createDirectory(atPath: f.root + "/results", withIntermediateDirectories: true)
        let result = await ArtifactCollector(workspace: f.workspace, outputDirectory: f.artifacts)
            .collect([Self.rule("o", ["build/*.o"])], jobSucceeded: true)
        #expect(result.files == 1)
        #expect(try GlobSearch.regularFiles(in: f.workspace, matching: ["dist/**"], excluding: ["**/*.map"])
            == ["dist/app", "dist/lib/core.js"])
        #expect(throws: GlobPatternError.self) { try GlobSearch.regularFiles(in: f.workspace, matching: ["../x"]) }
    }

    @Test func resultEncodesForStatusJSON() throws {
        let result = ArtifactCollection(files: 2, bytes: 10, warnings: ["w"], errors: [.nothingMatched(rule: "r", patterns: ["p"])])
        let json = String(decoding: try JSONEncoder().encode(result), as: UTF8.self)
        #expect(json.contains("\"errors\":[\"artifact \\\"r\\\" is required but no file matched \\\"p\\\"\"]"))
        #expect(json.contains("\"files\":2"))
    }
}
