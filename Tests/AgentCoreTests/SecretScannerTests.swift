import Foundation
import Testing
@testable import AgentCore

/// The artifact leak scanner: raw and encoded values, across chunk boundaries.
@Suite struct SecretScannerTests {
    let token = "ghp_0123456789abcdefXYZ"
    let password = "correct horse battery"

    var matcher: SecretMatcher {
        SecretMatcher(secrets: [(id: "token", value: Array(token.utf8)), (id: "password", value: Array(password.utf8))])
    }

    func withFile(_ contents: [UInt8], _ body: (String) throws -> Void) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("scan-\(UUID().uuidString)").path
        try Data(contents).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        try body(path)
    }

    @Test func findsARawValueAcrossEveryChunkBoundary() throws {
        let contents = Array("artifact header\n\(token)\ntrailer".utf8)
        try withFile(contents) { path in
            for chunkSize in [1, 2, 3, 5, 7, 16, 17, 4096] {
                let leaks = try SecretScanner(matcher: matcher, chunkSize: chunkSize).scan(path: path)
                #expect(leaks == [SecretLeak(file: path, secretID: "token")], "chunk size \(chunkSize)")
            }
        }
    }

    @Test func findsEncodedValues() throws {
        let b64 = Data(("x" + password).utf8).base64EncodedString()
        let url = password.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        for contents in ["config: \(b64)", "https://h/?p=\(url)", #"{"p": "\#(password)"}"#] {
            try withFile(Array(contents.utf8)) { path in
                let leaks = try SecretScanner(matcher: matcher, chunkSize: 5).scan(path: path)
                #expect(leaks.map(\.secretID) == ["password"], "\(contents)")
            }
        }
    }

    @Test func reportsEverySecretOnceWithoutTheValue() throws {
        let contents = Array("\(token) \(password) \(token)".utf8)
        try withFile(contents) { path in
            let leaks = try SecretScanner(matcher: matcher).scan(path: path)
            #expect(leaks.map(\.secretID) == ["password", "token"])
            for leak in leaks {
                #expect(leak.file == path)
                #expect(!leak.description.contains(token) && !leak.description.contains(password))
            }
        }
    }

    @Test func cleanFileHasNoLeaks() throws {
        var rng = SplitMix64(state: 3)
        let contents = (0..<200_000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        try withFile(contents) { path in
            let leaks = try SecretScanner(matcher: matcher).scan(path: path)
            #expect(leaks.isEmpty)
        }
    }

    @Test func scansAnOpenDescriptor() throws {
        try withFile(Array("..\(token)..".utf8)) { path in
            let fd = open(path, O_RDONLY)
            defer { close(fd) }
            let leaks = try SecretScanner(matcher: matcher).scan(fileDescriptor: fd, path: "dist/app.tar")
            #expect(leaks.map(\.description) == [#""dist/app.tar" contains secret "token""#])
        }
    }

    @Test func rejectionReasonForTheArtifactCollector() throws {
        try withFile(Array("\(password)|\(token)".utf8)) { path in
            let fd = open(path, O_RDONLY)
            defer { close(fd) }
            let reason = try SecretScanner(matcher: matcher).rejectionReason(path: "dist/x", fileDescriptor: fd)
            #expect(reason == #"it contains secrets "password", "token""#)
        }
        try withFile(Array("clean".utf8)) { path in
            let fd = open(path, O_RDONLY)
            defer { close(fd) }
            let reason = try SecretScanner(matcher: matcher).rejectionReason(path: "dist/y", fileDescriptor: fd)
            #expect(reason == nil)
        }
    }

    @Test func inMemoryBytes() {
        #expect(SecretScanner(matcher: matcher).scan(bytes: Array("a\(token)".utf8), path: "mem").map(\.secretID) == ["token"])
    }

    @Test func refusesSymlinksAndMissingFiles() throws {
        try withFile(Array(token.utf8)) { path in
            let link = path + ".link"
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: path)
            defer { try? FileManager.default.removeItem(atPath: link) }
            let error = #expect(throws: SecretScanError.self) { try SecretScanner(matcher: matcher).scan(path: link) }
            #expect(error?.description.contains("symbolic link") == true)
        }
        #expect(throws: SecretScanError.self) { try SecretScanner(matcher: matcher).scan(path: "/nonexistent/file") }
    }
}
