import Testing
@testable import AgentCore

/// `agent build`'s progress formats: what a hostile RUN prints never drives the operator's
/// terminal, secrets are masked first, and the live view stays a few lines high.
@Suite struct BuildProgressTests {
    static let hostile = "pwned \u{1B}]52;c;ZXZpbA==\u{07} \u{1B}[2J\u{1B}[H token=s3cr3t"

    @Test func plainShowsControlCharactersEscapedAndSecretsMasked() {
        let out = BufferOutput()
        let p = BuildProgress(format: .plain, output: out, redact: { $0.replacingOccurrences(of: "s3cr3t", with: "***") })
        let v = p.start("[1/2] RUN printf ...")
        p.log(v, Self.hostile)
        p.failed(v, "RUN exit 1: \u{1B}[31mred")
        p.note("note \u{1B}[1A")
        #expect(!out.text.contains("\u{1B}") && !out.text.contains("\u{07}"), "\(out.text)")
        #expect(out.text.contains("\\x1b]52;c;ZXZpbA==\\x07") && out.text.contains("token=***"), "\(out.text)")
        #expect(!out.text.contains("s3cr3t"))
        #expect(out.text.contains("#1 [1/2] RUN printf ...\n") && out.text.contains("#1 ERROR: RUN exit 1: \\x1b[31mred"))
    }

    @Test func ttyIsALiveViewThatPrintsFinishedVerticesOnceAndDropsControls() {
        let out = BufferOutput(isTerminal: true, columns: 60)
        let p = BuildProgress(format: .tty, output: out, redact: { $0.replacingOccurrences(of: "s3cr3t", with: "***") })
        let a = p.start("[stage-0 1/3] FROM busybox")
        p.done(a)
        let b = p.start("[stage-0 2/3] COPY . /src")
        p.cached(b)
        let c = p.start("[stage-0 3/3] RUN make")
        for i in 0..<500 { p.log(c, "line \(i) " + Self.hostile) }
        p.failed(c, "RUN make: exit code 2")
        p.finish()
        let text = out.text
        #expect(text.contains(" => [stage-0 1/3] FROM busybox  ") && text.contains(" => CACHED [stage-0 2/3] COPY . /src  "), "\(text)")
        #expect(text.contains(" => ERROR [stage-0 3/3] RUN make  ") && text.contains(" => => ERROR: RUN make: exit code 2"), "\(text)")
        #expect(text.contains("[+] Building ") && text.contains("(3/3) FINISHED"), "\(text)")
        // The last lines of the failed vertex, masked, without the hostile sequences.
        #expect(text.contains(" => => # line 499 pwned"), "\(text)")
        #expect(!text.contains("s3cr3t") && !text.contains("\u{1B}]52;") && !text.contains("\u{07}") && !text.contains("\u{1B}[2J"), "\(text)")
        // Every screen line fits the terminal: no wrap breaks the cursor arithmetic.
        let plainLines = text.replacingOccurrences(of: "\u{1B}[2m", with: "").replacingOccurrences(of: "\u{1B}[0m", with: "")
            .split(separator: "\n").map { $0.split(separator: "\u{1B}").first.map(String.init) ?? "" }
        #expect(plainLines.allSatisfy { $0.count <= 60 }, "\(plainLines.filter { $0.count > 60 })")
        // Finished vertices print once (the view is redrawn many times).
        #expect(text.components(separatedBy: " => CACHED [stage-0 2/3]").count == 2)
    }
}
