import AgentSupport
import FoundationEssentials
import Glibc
import Synchronization

/// `--progress tty`: a compact live view redrawn in place, for a person at a terminal.
///
/// Finished steps (and warnings) are printed once, above the live area, and scroll away like
/// normal output: `✔ [1/3] build 4.1s`, `✘ [2/3] test ERROR: exit status 2 1.2s` followed by
/// the step's last lines. The live area below shows running steps with their elapsed time
/// and last few output lines; it is erased and redrawn with ANSI cursor movement at most
/// `1 / redrawInterval` times a second (and on `finish()`), so a chatty step costs little.
public final class TTYProgress: ProgressRenderer {
    /// Output lines shown under a running step.
    public static let liveLines = 4
    /// Lines of a failed step repeated under its result.
    public static let failureLines = 10

    private struct RunningStep {
        var index: Int
        var total: Int
        var name: String
        var command: String
        var started: Date
        var lines: [String] = []
        var waiting: String?
    }

    private struct State {
        var running: [Int: RunningStep] = [:]
        /// Lines to print above the live area at the next redraw.
        var pending: [String] = []
        /// How many lines the live area took at the last redraw.
        var liveHeight = 0
        var lastDraw: Date = .distantPast
        var dirty = false
        var finished = false
        var hidCursor = false
    }

    private let output: any ProgressOutput
    private let now: @Sendable () -> Date
    private let redrawInterval: Duration
    private let state = Mutex(State())
    private let ticker = Mutex<Task<Void, Never>?>(nil)

    /// - Parameters:
    ///   - now: the clock for elapsed times and throttling (injectable for tests).
    ///   - redrawInterval: the least time between redraws.
    ///   - tick: how often elapsed times are refreshed while nothing else happens; nil for never.
    public init(output: any ProgressOutput, now: @escaping @Sendable () -> Date = { Date() },
                redrawInterval: Duration = .milliseconds(100), tick: Duration? = .milliseconds(100)) {
        self.output = output
        self.now = now
        self.redrawInterval = redrawInterval
        if let tick {
            ticker.withLock {
                $0 = Task.detached { [weak self] in
                    while !Task.isCancelled {
                        try? await Task.sleep(for: tick)
                        guard let self else { return }
                        self.redraw(force: false, tick: true)
                    }
                }
            }
        }
    }

    deinit {
        ticker.withLock { $0?.cancel() }
    }

    public func handle(_ event: ProgressEvent) {
        state.withLock { s in
            guard !s.finished else { return }
            s.dirty = true
            switch event {
            case .jobStarted:
                break
            case let .stepStarted(index, total, name, command, time):
                s.running[index] = RunningStep(index: index, total: total, name: name,
                                               command: PlainProgress.oneLine(command), started: time)
            case let .stepOutput(index, _, line, _):
                guard s.running[index] != nil else { break }
                s.running[index]!.lines.append(line)
                if s.running[index]!.lines.count > Self.failureLines {
                    s.running[index]!.lines.removeFirst(s.running[index]!.lines.count - Self.failureLines)
                }
            case let .stepWaiting(index, reason):
                s.running[index]?.waiting = reason
            case let .stepFinished(index, name, state, exitCode, signal, duration, lastLines):
                let step = s.running.removeValue(forKey: index)
                let total = step?.total ?? 0
                let label = "[\(index + 1)/\(total)] \(name)"
                let time = JobDuration.tenths(duration)
                switch state {
                case .succeeded, .pending, .running:
                    s.pending.append("\u{2714} \(label) \(time)")
                case .skipped:
                    s.pending.append("- \(label) SKIPPED")
                case .cancelled:
                    s.pending.append("\u{2718} \(label) CANCELED \(time)")
                case .failed, .timedOut, .error:
                    let reason = PlainProgress.failureReason(state: state, exitCode: exitCode, signal: signal)
                    s.pending.append("\u{2718} \(label) ERROR: \(reason) \(time)")
                    let lines = lastLines.isEmpty ? (step?.lines ?? []) : lastLines
                    s.pending += lines.suffix(Self.failureLines).map { "  \u{2502} " + $0 }
                }
            case let .stepSkipped(index, total, name, reason):
                s.pending.append("- [\(index + 1)/\(total)] \(name) SKIPPED" + (reason.isEmpty ? "" : " (\(reason))"))
            case let .jobFinished(jobID, state, exitCode, duration):
                s.pending.append("job \(jobID): \(state.rawValue) in \(JobDuration.tenths(duration)) (exit code \(exitCode))")
            case let .warning(message):
                s.pending.append("WARNING: \(message)")
            case let .service(alias, message):
                s.pending.append("service \(alias): \(message)")
            }
        }
        redraw(force: false, tick: false)
    }

    public func finish() {
        ticker.withLock { $0?.cancel(); $0 = nil }
        redraw(force: true, tick: false)
        state.withLock { $0.finished = true }
    }

    /// Erases the live area, prints pending lines, and draws the live area again, unless
    /// the last redraw was less than `redrawInterval` ago (then the next event, tick or
    /// `finish()` catches up). A tick redraws while steps run, so elapsed times advance.
    private func redraw(force: Bool, tick: Bool) {
        let t = now()
        let width = max(20, (output.columns ?? 80) - 1)
        // Written under the lock: a tick and an event drawing at once must not swap their
        // output, or the cursor arithmetic of the next redraw would be off.
        state.withLock { s in
            guard !s.finished else { return }
            if !force {
                guard s.dirty || (tick && !s.running.isEmpty) else { return }
                guard s.lastDraw.distance(to: t) >= Double(JobDuration.milliseconds(redrawInterval)) / 1000 else { return }
            }
            var out = ""
            if !s.hidCursor { out += "\u{1B}[?25l"; s.hidCursor = true }
            // Up to the first live line, column 1, then erase to the end of the screen.
            if s.liveHeight > 0 { out += "\u{1B}[\(s.liveHeight)F" }
            out += "\u{1B}[J"
            for line in s.pending { out += Self.fit(line, width) + "\n" }
            s.pending.removeAll()
            var height = 0
            if !force {
                for step in s.running.values.sorted(by: { $0.index < $1.index }) {
                    let elapsed = JobDuration.tenths(.milliseconds(Int64(max(0, step.started.distance(to: t)) * 1000)))
                    var head = "=> [\(step.index + 1)/\(step.total)] \(step.name): \(step.command)"
                    if let w = step.waiting { head += " (waiting: \(w))" }
                    out += Self.fit(head, width - elapsed.count - 1) + " " + elapsed + "\n"
                    height += 1
                    for line in step.lines.suffix(Self.liveLines) {
                        out += "\u{1B}[2m" + Self.fit("   " + line, width) + "\u{1B}[0m\n"
                        height += 1
                    }
                }
            } else {
                out += "\u{1B}[?25h"
            }
            s.liveHeight = height
            s.lastDraw = t
            s.dirty = false
            output.write(out)
        }
    }

    /// One screen line: control characters removed (build output must not move our cursor)
    /// and cut to `width` characters, so no line wraps and the cursor arithmetic holds.
    static func fit(_ line: String, _ width: Int) -> String {
        var out = ""
        var count = 0
        for ch in line {
            if ch.unicodeScalars.contains(where: TerminalText.isControl) {
                if ch == "\t" { out += " "; count += 1 }
                continue
            }
            if count >= width {
                out.removeLast()
                out += "\u{2026}"
                break
            }
            out.append(ch)
            count += 1
        }
        return out
    }
}
