import AgentSupport
import FoundationEssentials
import Glibc
import Synchronization

/// `agent build --progress tty` (and `auto` on a terminal): BuildKit's live view, redrawn
/// in place.
///
///     [+] Building 4.2s (5/9)
///      => [builder 2/4] RUN make                                        3.1s
///      => => # cc -c main.c
///
/// A vertex that finishes is printed once above the live area and scrolls away like normal
/// output (` => CACHED [builder 3/4] COPY . /src  0.0s`, ` => ERROR [stage-1 2/2] RUN
/// false  0.1s` followed by its last lines), so the view stays a few lines high however
/// large the build is. The live area holds the header and the running vertices with their
/// last `liveLines` lines; it is erased and redrawn at most every `redrawInterval` (and at
/// `finish()`). Text is redacted by `BuildProgress` before it gets here, and control
/// characters are dropped (`TTYProgress.fit`): build output must not move our cursor.
final class BuildTTYView: Sendable {
    static let liveLines = 6
    static let failureLines = 10
    static let redrawInterval: Duration = .milliseconds(100)

    private struct Running {
        var name: String
        var started: ContinuousClock.Instant
        var lines: [String] = []
    }

    private struct State {
        var running: [Int: Running] = [:]
        var pending: [String] = []
        var liveHeight = 0
        var lastDraw: ContinuousClock.Instant? = nil
        var total = 0
        var finished = 0
        var done = false
    }

    private let output: any ProgressOutput
    private let started = ContinuousClock.now
    private let state = Mutex(State())
    private let ticker = Mutex<Task<Void, Never>?>(nil)

    init(output: any ProgressOutput) {
        self.output = output
        ticker.withLock {
            $0 = Task.detached { [weak self] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: Self.redrawInterval)
                    guard let self else { return }
                    self.redraw(force: false)
                }
            }
        }
    }

    deinit { ticker.withLock { $0?.cancel() } }

    func start(_ number: Int, _ name: String) {
        update { s in
            s.running[number] = Running(name: name, started: .now)
            s.total += 1
        }
    }

    func log(_ number: Int, _ line: String) {
        update { s in
            guard s.running[number] != nil else { return }
            s.running[number]!.lines.append(line)
            let n = s.running[number]!.lines.count
            if n > Self.failureLines { s.running[number]!.lines.removeFirst(n - Self.failureLines) }
        }
    }

    /// `outcome`: nil when it ran to its end, "CACHED", or "ERROR" with the message.
    func end(_ number: Int, _ outcome: String?, message: String? = nil) {
        update { s in
            guard let v = s.running.removeValue(forKey: number) else { return }
            s.finished += 1
            let time = Self.tenths(ContinuousClock.now - v.started)
            s.pending.append(" => " + (outcome.map { $0 + " " } ?? "") + v.name + "  " + time)
            if outcome == "ERROR" {
                s.pending += v.lines.suffix(Self.failureLines).map { " => => # " + $0 }
                if let message { s.pending.append(" => => ERROR: " + message) }
            }
        }
    }

    func note(_ text: String) { update { $0.pending.append(text) } }

    /// The last redraw: everything pending, the final header, the cursor shown again.
    func finish() {
        ticker.withLock { $0?.cancel(); $0 = nil }
        redraw(force: true)
        state.withLock { $0.done = true }
    }

    private func update(_ change: (inout State) -> Void) {
        let stop = state.withLock { s -> Bool in
            if s.done { return true }
            change(&s)
            return false
        }
        if !stop { redraw(force: false) }
    }

    /// Erases the live area, prints what finished, draws the header and running vertices.
    private func redraw(force: Bool) {
        let now = ContinuousClock.now
        let width = max(20, (output.columns ?? 80) - 1)
        // Written under the lock, so two redraws never interleave their cursor arithmetic.
        state.withLock { s in
            guard !s.done else { return }
            if !force, let last = s.lastDraw, now - last < Self.redrawInterval { return }
            var out = s.lastDraw == nil ? "\u{1B}[?25l" : ""
            if s.liveHeight > 0 { out += "\u{1B}[\(s.liveHeight)F" }
            out += "\u{1B}[J"
            for line in s.pending { out += TTYProgress.fit(line, width) + "\n" }
            s.pending.removeAll()
            let head = "[+] Building \(Self.tenths(now - started)) (\(s.finished)/\(s.total))" + (force ? " FINISHED" : "")
            out += TTYProgress.fit(head, width) + "\n"
            var height = 1
            if !force {
                for (_, v) in s.running.sorted(by: { $0.key < $1.key }) {
                    let time = Self.tenths(now - v.started)
                    out += TTYProgress.fit(" => " + v.name, width - time.count - 1) + " " + time + "\n"
                    height += 1
                    for line in v.lines.suffix(Self.liveLines) {
                        out += "\u{1B}[2m" + TTYProgress.fit(" => => # " + line, width) + "\u{1B}[0m\n"
                        height += 1
                    }
                }
            } else {
                out += "\u{1B}[?25h"
                height = 0
            }
            s.liveHeight = height
            s.lastDraw = now
            output.write(out)
        }
    }

    static func tenths(_ d: Duration) -> String {
        let ms = d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
        return "\(ms / 1000).\(ms % 1000 / 100)s"
    }
}
