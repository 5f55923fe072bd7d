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

    func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

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
        #expect(w.append(stream: .stdout, bytes: bytes("hello\nwor")) == ["hello"])
        #expect(w.append(stream: .stderr, bytes: bytes("oops\r\n")) == ["oops"])
        #expect(w.append(stream: .stdout, bytes: bytes("ld\n")) == ["world"])
        #expect(w.finish().isEmpty)
        #expect(try contents(w.path) == """
        2026-11-26T21:30:00.123Z out hello
        2026-11-26T21:30:00.123Z err oops
        2026-11-26T21:30:00.123Z out world

        """)
        #expect(w.lastLines() == ["hello", "oops", "world"])
        #expect(w.lastLines(2) == ["oops", "world"])
        #expect(w.writeError == nil)
    }

    @Test func partialLinesOfBothStreamsAreFlushedAtTheEnd() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let w = try StepLogWriter(path: dir + "/02-s.log", clock: { Self.t0 })
        #expect(w.append(stream: .stderr, bytes: bytes("no newline on err")).isEmpty)
        #expect(w.append(stream: .stdout, bytes: bytes("nor on out")).isEmpty)
        let last = w.finish()
        #expect(last.map(\.stream) == [.stdout, .stderr])
        #expect(last.map(\.line) == ["nor on out", "no newline on err"])
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
        let lines = w.append(stream: .stdout, bytes: [UInt8](repeating: 0x61, count: max * 2 + max / 2) + [0x0A])
        #expect(lines.map(\.utf8.count) == [max, max, max / 2])
        // ...and a line that never ends, fed in small chunks, is cut as it grows.
        var pieces: [String] = []
        for _ in 0..<(max / 1024 + 1) {
            pieces += w.append(stream: .stderr, bytes: [UInt8](repeating: 0x62, count: 1024))
        }
        #expect(pieces.map(\.utf8.count) == [max])
        #expect(w.finish().map(\.line.utf8.count) == [1024])
    }

    @Test func capWritesWholeLinesThenOneMarker() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Each "xxxxxxxxx" line takes 24 + 5 + 9 + 1 = 39 bytes in the file; room for two.
        let w = try StepLogWriter(directory: dir, index: 0, stepName: "chatty", capBytes: 100, clock: { Self.t0 })
        var returned = 0
        for _ in 0..<10 { returned += w.append(stream: .stdout, bytes: bytes("xxxxxxxxx\n")).count }
        w.append(stream: .stdout, bytes: bytes("tail"))
        #expect(returned == 2, "lines past the cap are not returned either, so log.txt and progress stay bounded")
        #expect(w.writtenBytes == 78)
        let end = w.finish()
        #expect(end.map(\.line) == ["[log truncated: 84 bytes dropped]"])
        #expect(w.droppedBytes == 8 * 10 + 4)
        #expect(try contents(w.path) == """
        2026-11-26T21:30:00.123Z out xxxxxxxxx
        2026-11-26T21:30:00.123Z out xxxxxxxxx
        [log truncated: 84 bytes dropped]

        """)
        #expect(w.lastLines().last == "tail", "the ring keeps the end of the output")
    }

    @Test func theRingKeepsTheLastHundredLines() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let w = try StepLogWriter(directory: dir, index: 0, stepName: "r", clock: { Self.t0 })
        let all = bytes((1...250).map { "line \($0)\n" }.joined())
        // Odd chunk sizes, so lines cross chunk boundaries.
        var i = 0
        var count = 0
        while i < all.count {
            let end = min(all.count, i + 7)
            count += w.append(stream: .stdout, bytes: Array(all[i..<end])).count
            i = end
        }
        w.finish()
        #expect(count == 250)
        #expect(w.lastLines() == (151...250).map { "line \($0)" })
        #expect(w.lastLines(1000).count == 100)
    }

    @Test func invalidUTF8IsKeptInTheFileAndReplacedInLines() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let w = try StepLogWriter(directory: dir, index: 0, stepName: "bin", clock: { Self.t0 })
        let lines = w.append(stream: .stdout, bytes: [0x61, 0xFF, 0x62, 0x0A])
        w.finish()
        #expect(lines == ["a\u{FFFD}b"])
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

    @Test func outputAfterFinishIsIgnored() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let w = try StepLogWriter(directory: dir, index: 0, stepName: "late", clock: { Self.t0 })
        w.append(stream: .stdout, bytes: bytes("one\n"))
        w.finish()
        #expect(w.append(stream: .stdout, bytes: bytes("two\n")).isEmpty)
        #expect(w.finish().isEmpty)
        #expect(try contents(w.path) == "2026-11-26T21:30:00.123Z out one\n")
    }

    /// /dev/full fails every write with ENOSPC: the writer records it and keeps consuming.
    @Test func aFailedWriteIsRecordedNotThrown() throws {
        let w = try StepLogWriter(path: "/dev/full", clock: { Self.t0 })
        #expect(w.append(stream: .stdout, bytes: bytes("a\nb\n")) == ["a", "b"])
        #expect(w.writeError?.errno == ENOSPC)
        #expect(w.append(stream: .stdout, bytes: bytes("c\n")).isEmpty)
        #expect(w.finish().map(\.line) == ["[log truncated: 2 bytes dropped]"])
        #expect(w.lastLines() == ["a", "b", "c"])
    }

    @Test func timestampFormat() {
        #expect(LogTimestamp.format(Self.t0) == "2026-11-26T21:30:00.123Z")
        #expect(LogTimestamp.format(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(LogTimestamp.format(Date(timeIntervalSince1970: 951_782_400.999)) == "2000-02-29T00:00:00.999Z")
    }
}

/// Past the cap the writer skips a chunk's lines in one step; what it keeps must be what
/// the line-by-line path would have kept.
@Suite struct StepLogWriterFloodTests {
    @Test func pastTheCapOnlyTheLastLinesAndTheCountChange() throws {
        let dir = NSTemporaryDirectory() + "steplog-flood-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let w = try StepLogWriter(path: dir + "/x.log", capBytes: 100)
        var total = 0
        var n = 0
        // 50 chunks of 1000 numbered lines each, the last line of each chunk unfinished.
        var carry = ""
        for _ in 0..<50 {
            var text = carry
            for _ in 0..<1000 { text += "line \(n)\n"; n += 1 }
            text += "part"
            total += text.utf8.count - "part".utf8.count
            _ = w.append(stream: .stdout, bytes: Array(text.utf8))
            // The unfinished "part" joins the next chunk's first line.
            carry = ""
        }
        _ = w.finish()
        let last = w.lastLines()
        #expect(last.count == StepLogWriter.ringCapacity)
        #expect(last.last == "part")
        #expect(last[last.count - 2] == "line \(n - 1)")
        #expect(last.first == "line \(n - 99)")
        // Only "line 0" and "line 1" fit in 100 bytes (36 each with stamp and stream); every
        // other output byte was counted as dropped, each chunk's "part" included.
        #expect(w.writtenBytes == 72)
        #expect(w.droppedBytes == total + 50 * 4 - 14)
    }

    @Test func lastLinesHelperFindsTheBoundary() {
        let text = Array("a\nb\nc\nd".utf8)
        text.withUnsafeBufferPointer { buf in
            #expect(StepLogWriter.startOfLastLines(buf, 2) == 2)   // "b\nc\nd" remains
            #expect(StepLogWriter.startOfLastLines(buf, 3) == nil)
        }
    }
}

/// A step that died of the process limit says which limit it was.
@Suite struct ProcessLimitReasonTests {
    @Test func forkFailuresNameTheLimit() {
        let limit = ProcessLimit(kind: "rlimit", value: 4096)
        #expect(StepExecutor.processLimitReason(lastLines: ["ok", "sh: 1: Cannot fork"], limit: limit)
                == "fork failed: the step reached its process limit (RLIMIT_NPROC 4096)")
        #expect(StepExecutor.processLimitReason(lastLines: ["bash: fork: retry: Resource temporarily unavailable"], limit: limit) != nil)
        #expect(StepExecutor.processLimitReason(lastLines: ["make: *** [all] Error 2"], limit: limit) == nil)
    }
}
