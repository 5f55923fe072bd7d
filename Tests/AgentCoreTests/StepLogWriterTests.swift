import Foundation
import Testing
@testable import AgentCore

@Suite struct StepLogWriterTests {
    static let t0 = Date(timeIntervalSince1970: 1_795_728_600.123)  // 2026-11-26T21:30:00.123Z

    func scratch() throws -> String {
        let dir = NSTemporaryDirectory() + "steplog-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    func contents(_ path: String) throws -> String {
        try String(contentsOfFile: path, encoding: .utf8)
    }

    @Test func fileNames() {
        #expect(StepLogWriter.fileName(index: 0, stepName: "build") == "01-build.log")
        #expect(StepLogWriter.fileName(index: 11, stepName: "unit tests/ä") == "12-unit_tests___.log")
        #expect(StepLogWriter.fileName(index: 99, stepName: "../x") == "100-.._x.log")
        #expect(StepLogWriter.fileName(index: 2, stepName: "") == "03-step.log")
        #expect(StepLogWriter.fileName(index: 0, stepName: String(repeating: "a", count: 200)).count == "01-".count + 64 + ".log".count)
    }

    @Test func timestampsAndStreams() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let w = try StepLogWriter(directory: dir, index: 0, stepName: "build", clock: { Self.t0 })
        #expect(w.path == dir + "/01-build.log")
        let lines = try w.append(Array("hello\nwor".utf8), stream: .stdout)
        #expect(lines.map(\.text) == ["hello"])
        #expect(lines[0].formatted == "2026-11-26T21:30:00.123Z out hello")
        try w.append(Array("oops\r\n".utf8), stream: .stderr)
        let rest = try w.append(Array("ld\n".utf8), stream: .stdout)
        #expect(rest.map(\.text) == ["world"])
        #expect(try w.finish().isEmpty)
        #expect(try contents(w.path) == """
        2026-11-26T21:30:00.123Z out hello
        2026-11-26T21:30:00.123Z err oops
        2026-11-26T21:30:00.123Z out world

        """)
        #expect(w.lastLines == ["hello", "oops", "world"])
    }

    @Test func partialLinesOfBothStreamsAreFlushedAtTheEnd() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let w = try StepLogWriter(directory: dir, index: 1, stepName: "s", clock: { Self.t0 })
        try w.append(Array("no newline on err".utf8), stream: .stderr)
        try w.append(Array("nor on out".utf8), stream: .stdout)
        let last = try w.finish()
        #expect(last.map(\.text) == ["nor on out", "no newline on err"])
        #expect(try contents(dir + "/02-s.log") == """
        2026-11-26T21:30:00.123Z out nor on out
        2026-11-26T21:30:00.123Z err no newline on err

        """)
    }

    @Test func longLinesAreSplit() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let w = try StepLogWriter(directory: dir, index: 0, stepName: "long", clock: { Self.t0 })
        let max = StepLogWriter.maxLineBytes
        // One complete line of 2.5 pieces in a single chunk...
        let lines = try w.append([UInt8](repeating: 0x61, count: max * 2 + max / 2) + [0x0A], stream: .stdout)
        #expect(lines.map(\.text.utf8.count) == [max, max, max / 2])
        // ...and a line that never ends, fed in small chunks, is cut as it grows.
        var pieces: [StepLogLine] = []
        for _ in 0..<(max / 1024 + 1) {
            pieces += try w.append([UInt8](repeating: 0x62, count: 1024), stream: .stderr)
        }
        #expect(pieces.map(\.text.utf8.count) == [max])
        #expect(try w.finish().map(\.text.utf8.count) == [1024])
    }

    @Test func capWritesWholeLinesThenOneMarker() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Each "xxxxxxxxx" line takes 24 + 5 + 9 + 1 = 39 bytes in the file; room for two.
        let w = try StepLogWriter(directory: dir, index: 0, stepName: "chatty", capBytes: 100, clock: { Self.t0 })
        var returned = 0
        for _ in 0..<10 { returned += try w.append(Array("xxxxxxxxx\n".utf8), stream: .stdout).count }
        try w.append(Array("tail".utf8), stream: .stdout)
        #expect(returned == 10, "lines past the cap are still returned for progress")
        #expect(w.writtenBytes == 78)
        #expect(try w.finish().map(\.keptInFile) == [false])
        #expect(w.droppedBytes == 8 * 10 + 4)
        #expect(try contents(w.path) == """
        2026-11-26T21:30:00.123Z out xxxxxxxxx
        2026-11-26T21:30:00.123Z out xxxxxxxxx
        [log truncated: 84 bytes dropped]

        """)
        #expect(w.lastLines.last == "tail")
    }

    @Test func theRingKeepsTheLastHundredLines() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let w = try StepLogWriter(directory: dir, index: 0, stepName: "r", clock: { Self.t0 })
        let text = (1...250).map { "line \($0)\n" }.joined()
        // Odd chunk sizes, so lines cross chunk boundaries.
        let bytes = Array(text.utf8)
        var i = 0
        var count = 0
        while i < bytes.count {
            let end = min(bytes.count, i + 7)
            count += try w.append(Array(bytes[i..<end]), stream: .stdout).count
            i = end
        }
        try w.finish()
        #expect(count == 250)
        #expect(w.lastLines == (151...250).map { "line \($0)" })
    }

    @Test func invalidUTF8IsKeptInTheFileAndReplacedInLines() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let w = try StepLogWriter(directory: dir, index: 0, stepName: "bin", clock: { Self.t0 })
        let lines = try w.append([0x61, 0xFF, 0x62, 0x0A], stream: .stdout)
        try w.finish()
        #expect(lines[0].text == "a\u{FFFD}b")
        let raw = try Data(contentsOf: URL(fileURLWithPath: w.path))
        #expect(Array(raw.suffix(4)) == [0x61, 0xFF, 0x62, 0x0A])
    }

    @Test func aSymlinkInPlaceOfTheLogIsRefused() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createSymbolicLink(atPath: dir + "/01-x.log", withDestinationPath: dir + "/elsewhere")
        #expect(throws: StepLogError.self) { try StepLogWriter(directory: dir, index: 0, stepName: "x") }
        #expect(!FileManager.default.fileExists(atPath: dir + "/elsewhere"))
    }

    @Test func timestampFormat() {
        #expect(Timestamp.rfc3339(Self.t0) == "2026-11-26T21:30:00.123Z")
        #expect(Timestamp.rfc3339(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp.rfc3339(Date(timeIntervalSince1970: 951_782_400.999)) == "2000-02-29T00:00:00.999Z")
    }
}

extension StepLogWriterTests {
    @Test func outputAfterFinishIsIgnored() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let w = try StepLogWriter(directory: dir, index: 0, stepName: "late", clock: { Self.t0 })
        try w.append(Array("one\n".utf8), stream: .stdout)
        try w.finish()
        #expect(try w.append(Array("two\n".utf8), stream: .stdout).isEmpty)
        #expect(try w.finish().isEmpty)
        #expect(try contents(w.path) == "2026-11-26T21:30:00.123Z out one\n")
    }
}
