import Foundation
import Synchronization
import Testing
@testable import AgentCore

/// A scripted job: a step that succeeds, one that fails with 12 lines of output,
/// a skipped one, a warning, and the end.
enum ScriptedJob {
    static let t0 = Date(timeIntervalSince1970: 1_795_728_600)  // 2026-11-26T21:30:00Z
    static let failingLines = (1...12).map { "line \($0)" }

    static var events: [ProgressEvent] {
        [
            .jobStarted(jobID: "hello", stepCount: 3, time: t0),
            .stepStarted(index: 0, total: 3, name: "build", command: "make -j2", time: t0),
            .stepOutput(index: 0, stream: .stdout, line: "cc -c main.c", elapsed: .milliseconds(512)),
            .stepFinished(index: 0, name: "build", state: .succeeded, exitCode: 0, signal: nil,
                          duration: .milliseconds(4_100), lastLines: ["cc -c main.c"]),
            .stepStarted(index: 1, total: 3, name: "test", command: "make test\nmake lint", time: t0.addingTimeInterval(4.1)),
            .stepWaiting(index: 1, reason: "cache \"ccache\" is locked"),
            .stepOutput(index: 1, stream: .stderr, line: "FAIL: \"quoted\"\ttab", elapsed: .milliseconds(1_200)),
            .stepFinished(index: 1, name: "test", state: .failed, exitCode: 2, signal: nil,
                          duration: .milliseconds(1_300), lastLines: failingLines),
            .stepSkipped(index: 2, total: 3, name: "deploy", reason: "an earlier step failed"),
            .warning("memory limit not enforced"),
            .jobFinished(jobID: "hello", state: .failed, exitCode: 1, duration: .milliseconds(5_500)),
        ]
    }
}

@Suite struct ProgressRendererTests {
    @Test func plainHasBuildKitsShape() {
        let out = BufferOutput()
        let r = PlainProgress(output: out)
        for e in ScriptedJob.events { r.handle(e) }
        r.finish()
        let expected = """
        #1 [build 1/3] make -j2
        #1 0.512 cc -c main.c
        #1 DONE 4.1s

        #2 [test 2/3] make test ...
        #2 waiting: cache "ccache" is locked
        #2 1.200 FAIL: "quoted"\ttab
        #2 ERROR: exit status 2
        ------
         > [test 2/3] make test ...:
        line 3
        line 4
        line 5
        line 6
        line 7
        line 8
        line 9
        line 10
        line 11
        line 12
        ------

        #3 [deploy 3/3]
        #3 SKIPPED (an earlier step failed)

        WARNING: memory limit not enforced
        job hello: failed in 5.5s (exit code 1)

        """
        #expect(out.text == expected)
    }

    @Test func plainFailureReasons() {
        func finished(_ state: StepState, _ code: Int32?, _ signal: Int32?) -> String? {
            PlainProgress(output: BufferOutput()).render(.stepFinished(
                index: 4, name: "s", state: state, exitCode: code, signal: signal, duration: .seconds(1), lastLines: []))
        }
        #expect(finished(.timedOut, nil, 15)?.hasPrefix("#5 ERROR: timed out\n") == true)
        #expect(finished(.failed, nil, 9)?.hasPrefix("#5 ERROR: killed by signal 9\n") == true)
        #expect(finished(.cancelled, nil, 15) == "#5 CANCELED\n\n")
        #expect(finished(.skipped, nil, nil) == "#5 SKIPPED\n\n")
        #expect(finished(.succeeded, 0, nil) == "#5 DONE 1.0s\n\n")
    }

    @Test func jsonIsOneObjectPerLine() throws {
        let out = BufferOutput()
        let r = JSONProgress(output: out, now: { ScriptedJob.t0.addingTimeInterval(1.25) })
        for e in ScriptedJob.events { r.handle(e) }
        r.finish()
        let lines = out.text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.last == "")
        let objects = try lines.dropLast().map { line in
            try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)")
        }
        #expect(objects.map { $0["type"] as? String } == [
            "job_started", "step_started", "log", "step_finished", "step_started", "step_waiting", "log",
            "step_finished", "step_finished", "warning", "job_finished",
        ])
        #expect(lines[0] == #"{"type":"job_started","time":"2026-11-26T21:30:00.000Z","job":"hello","steps":3}"#)
        #expect(lines[2] == #"{"type":"log","time":"2026-11-26T21:30:01.250Z","step":1,"stream":"out","elapsed":0.512,"line":"cc -c main.c"}"#)
        #expect(lines[6] == #"{"type":"log","time":"2026-11-26T21:30:01.250Z","step":2,"stream":"err","elapsed":1.200,"line":"FAIL: \"quoted\"\ttab"}"#)
        #expect(objects[4]["command"] as? String == "make test\nmake lint")
        #expect(lines[7] == #"{"type":"step_finished","time":"2026-11-26T21:30:01.250Z","step":2,"name":"test","state":"failed","exit_code":2,"signal":null,"duration":1.300,"error":"exit status 2"}"#)
        #expect(objects[8]["state"] as? String == "skipped")
        #expect(objects[8]["reason"] as? String == "an earlier step failed")
        #expect(objects[9]["message"] as? String == "memory limit not enforced")
        #expect(lines[10] == #"{"type":"job_finished","time":"2026-11-26T21:30:01.250Z","job":"hello","state":"failed","exit_code":1,"duration":5.500}"#)
    }

    @Test func jsonEscapesControlCharacters() throws {
        let out = BufferOutput()
        JSONProgress(output: out).handle(.stepOutput(index: 0, stream: .stdout, line: "a\u{1B}[31mb\u{0}c\\", elapsed: .zero))
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(out.text.utf8)) as? [String: Any])
        #expect(obj["line"] as? String == "a\u{1B}[31mb\u{0}c\\")
        #expect(out.text.contains(#""line":"a\u001b[31mb\u0000c\\""#))
    }

    /// With a clock that stands still, nothing is redrawn until `finish()`: the throttle holds
    /// everything back and the final redraw prints it. No timing involved.
    @Test func ttyCommitsFinishedStepsAndRestoresTheCursor() {
        let out = BufferOutput(isTerminal: true, columns: 60)
        let r = TTYProgress(output: out, now: { ScriptedJob.t0 }, redrawInterval: .seconds(3600), tick: nil)
        r.handle(ScriptedJob.events[0])
        // The first event draws (the last redraw was "never"), later ones wait for the throttle.
        for e in ScriptedJob.events.dropFirst() { r.handle(e) }
        r.finish()
        let text = out.text
        #expect(text.hasPrefix("\u{1B}[?25l"))
        #expect(text.hasSuffix("\u{1B}[?25h"))
        #expect(text.contains("\u{2714} [1/3] build 4.1s\n"))
        #expect(text.contains("\u{2718} [2/3] test ERROR: exit status 2 1.3s\n"))
        #expect(text.contains("  \u{2502} line 12\n"))
        #expect(!text.contains("  \u{2502} line 2\n"))
        #expect(text.contains("- [3/3] deploy SKIPPED (an earlier step failed)\n"))
        #expect(text.contains("WARNING: memory limit not enforced\n"))
        #expect(text.contains("job hello: failed in 5.5s (exit code 1)\n"))
        r.handle(.warning("after finish"))
        #expect(!out.text.contains("after finish"))
    }

    @Test func ttyRedrawsTheLiveAreaInPlace() {
        let clock = TestClock(ScriptedJob.t0)
        let out = BufferOutput(isTerminal: true, columns: 40)
        let r = TTYProgress(output: out, now: { clock.now }, redrawInterval: .milliseconds(100), tick: nil)
        r.handle(.stepStarted(index: 0, total: 2, name: "build", command: "make", time: ScriptedJob.t0))
        clock.advance(0.5)
        r.handle(.stepOutput(index: 0, stream: .stdout, line: "compiling \u{1B}[2Jthings", elapsed: .milliseconds(500)))
        let text = out.text
        // Second draw: up over the 1 line drawn before, erase, then the step (elapsed 0.5s)
        // and its output line with the escape sequence from the build removed.
        #expect(text.contains("\u{1B}[1F\u{1B}[J=> [1/2] build: make"))
        #expect(text.contains(" 0.5s\n"))
        #expect(text.contains("compiling [2Jthings"))
        #expect(!text.contains("\u{1B}[2J"))
        r.finish()
    }

    @Test func ttyLinesAreCutToTheTerminalWidth() {
        #expect(TTYProgress.fit("abcdefghij", 5) == "abcd\u{2026}")
        #expect(TTYProgress.fit("abc", 5) == "abc")
        #expect(TTYProgress.fit("a\tb\u{7}c", 10) == "a bc")
    }

    @Test func modesResolve() {
        let terminal = BufferOutput(isTerminal: true), pipe = BufferOutput()
        #expect(ProgressMode.auto.resolved(for: terminal, environment: ["TERM": "xterm"]) == .tty)
        #expect(ProgressMode.auto.resolved(for: terminal, environment: ["TERM": "dumb"]) == .plain)
        #expect(ProgressMode.auto.resolved(for: pipe, environment: [:]) == .plain)
        #expect(ProgressMode.json.resolved(for: terminal) == .json)
        #expect(makeRenderer(mode: .json, output: pipe) is JSONProgress)
        #expect(makeRenderer(mode: .plain, output: terminal) is PlainProgress)
        #expect(ProgressMode(rawValue: "tty") == .tty)
    }
}

/// A clock tests move by hand.
final class TestClock: Sendable {
    private let time: Mutex<Date>
    init(_ start: Date) { time = Mutex(start) }
    var now: Date { time.withLock { $0 } }
    func advance(_ seconds: TimeInterval) { time.withLock { $0 = $0.addingTimeInterval(seconds) } }
}
