import Testing
@testable import Dockerfile

/// A small deterministic generator (xorshift), so a failing case can be replayed.
struct Xorshift {
    var state: UInt64
    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
    mutating func pick<T>(_ a: [T]) -> T { a[Int(next() % UInt64(a.count))] }
}

let fragments = [
    "FROM ", "RUN ", "COPY ", "ADD ", "ENV ", "ARG ", "LABEL ", "WORKDIR ", "USER ", "EXPOSE ", "VOLUME ",
    "CMD ", "ENTRYPOINT ", "SHELL ", "HEALTHCHECK ", "ONBUILD ", "STOPSIGNAL ", "MAINTAINER ", "AS ", "scratch ",
    "busybox ", "--mount=", "type=cache,", "type=secret,", "target=/t", "id=x", "--from=", "0 ", "--chown=",
    "--platform=", "$", "${", "}", "${A:-", "${B:?", "${C/", "//", "#", "%", "\\", "\n", "\\\n", " ", "\t", "\"",
    "'", "[", "]", ",", "=", "A=", "B=1 ", "<<", "<<-", "EOF", "\nEOF\n", "-", "--", "*", "?", "..", "/", "é", "🚀",
    "\u{0}", "\r", "# escape=`\n", "`", "NONE", "CMD-SHELL", "[\"a\",", "\"b\"]", "1", "8080/tcp",
]

let keywords = ["RUN ", "COPY ", "ADD ", "ENV ", "ARG ", "LABEL ", "WORKDIR ", "USER ", "EXPOSE ", "VOLUME ", "CMD ",
                "ENTRYPOINT ", "SHELL ", "HEALTHCHECK ", "ONBUILD ", "STOPSIGNAL ", "FROM ", "run ", "RUNN ", "# "]

@Test func randomDockerfilesParseOrFailCleanly() throws {
    var rng = Xorshift(state: 0x9E37_79B9_7F4A_7C15)
    var parsed = 0, planned = 0, applied = 0
    for _ in 0..<1500 {
        // Mostly well-formed lines with hostile arguments, now and then plain noise.
        var text = rng.next() % 8 == 0 ? "" : "FROM busybox AS s\(rng.next() % 3)\n"
        for _ in 0..<Int(rng.next() % 12) {
            text += rng.pick(keywords)
            for _ in 0..<Int(rng.next() % 6) { text += rng.pick(fragments) }
            text += "\n"
        }
        guard let df = try? Dockerfile.parse(text) else { continue }
        parsed += 1
        guard let plan = try? BuildPlan(df, options: BuildOptions(buildArgs: ["A": "x y", "B": "$A"])) else { continue }
        planned += 1
        for stage in plan.stages {
            guard var state = try? plan.stageState(for: stage.index, base: ImageConfig(onBuild: ["RUN x"])) else { continue }
            for inst in stage.stage.instructions {
                if let a = try? state.apply(inst) {
                    applied += 1
                    _ = a.cacheKeyText
                    _ = a.runCommand
                }
            }
        }
    }
    // Enough cases get past each layer for the run to mean something.
    #expect(parsed > 100)
    #expect(planned > 50)
    #expect(applied > 50)
}

@Test func randomIgnoreFilesMatchOrFailCleanly() {
    var rng = Xorshift(state: 42)
    let parts = ["*", "**", "?", "[", "]", "^", "a", "b", "/", "!", "\\", ".", "..", "\n", " ", "#", "-", "é"]
    let paths = ["a", "a/b", "b/a/c", ".a", "a b", "é/a", "a/b/c/d/e/f/g/h", ""]
    var matched = 0
    for _ in 0..<3000 {
        var text = ""
        for _ in 0..<Int(rng.next() % 20) { text += rng.pick(parts) }
        guard let ignore = try? DockerIgnore(text: text) else { continue }
        for p in paths {
            if ignore.isExcluded(p) { matched += 1 }
            _ = ignore.mayReinclude(beneath: p)
        }
    }
    #expect(matched > 0)
}

@Test func deepJSONIsShellFormNotACrash() throws {
    let deep = String(repeating: "[", count: 100_000)
    guard case .cmd(let c) = try only("FROM scratch\nCMD " + deep) else { Issue.record("CMD"); return }
    #expect(c.prependsShell)
}

@Test func manyHeredocMarkersOnOneLineAreBoundedByTheLines() {
    let line = "FROM scratch\nRUN " + String(repeating: "<<A ", count: 30_000) + "\n"
    #expect(parseError(line)?.code == .heredoc)
}

@Test func longLinesOfExpansionSyntaxAreFine() throws {
    let text = "FROM scratch\nENV A=" + String(repeating: "${X:-", count: 30) + "v" + String(repeating: "}", count: 30)
        + String(repeating: "$A", count: 50_000) + "\n"
    let (s, _) = try dispatch(text)
    #expect(s.config.env.contains { $0.hasPrefix("A=v") })
}
