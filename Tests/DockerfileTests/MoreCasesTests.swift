import Testing
@testable import Dockerfile

@Test(arguments: [
    ("${PWD:-}", "/home"),
    ("${NOTSET:-}", ""),
    ("$PWD$SHELL", "/homebash"),
    ("${PWD}${SHELL}", "/homebash"),
    ("'\"'", "\""),
    ("\"'\"", "'"),
    ("a\\ b", "a b"),
    ("\\a", "a"),
    ("\"\\\\\"", "\\"),
    ("$_", ""),
    ("${NOTSET:-$PWD}", "/home"),
    ("${NOTSET:-a b}", "a b"),
    ("${SHELL:+${PWD}}", "/home"),
    ("\"${NOTSET:-x y}\"", "x y"),
    ("${FILE#*.}", "tar.gz"),
    ("${FILE##*.}", "gz"),
    ("${FILE%.gz}", "archive.tar"),
    ("${FILE%%t*}", "archive."),
    ("${FILE/tar/zip}", "archive.zip.gz"),
    ("${FILE/?/X}", "Xrchive.tar.gz"),
    ("${FILE//?/X}", "XXXXXXXXXXXXXX"),
    ("${NOTSET/a/b}", ""),
    ("${SHELL#b?}", "sh"),
    ("${SHELL%\\*}", "bash"),
])
func moreExpansionCases(input: String, expected: String) throws {
    #expect(try ShellLex().expand(input, lexVars) == expected)
}

@Test(arguments: [
    ("linux/amd64", "linux/amd64"),
    ("linux/arm64/v8", "linux/arm64/v8"),
    ("arm64", "linux/arm64"),
    ("Linux/x86_64", "linux/amd64"),
    ("linux/aarch64", "linux/arm64"),
])
func platformsParse(text: String, normal: String) {
    #expect(Platform.parse(text)?.description == normal)
}

@Test(arguments: ["", "linux/", "/amd64", "a/b/c/d", "linux/am d64"])
func malformedPlatformsAreRefused(text: String) {
    #expect(Platform.parse(text) == nil)
}

@Test(arguments: [
    ("30s", Int64(30_000_000_000)),
    ("1m30s", Int64(90_000_000_000)),
    ("1.5h", Int64(5_400_000_000_000)),
    ("300ms", Int64(300_000_000)),
    ("10us", Int64(10_000)),
    ("0", Int64(0)),
])
func durationsParseAsGoDoes(text: String, nanoseconds: Int64) {
    #expect(GoDuration.parse(text) == nanoseconds)
}

@Test(arguments: [("64m", Int64(64 << 20)), ("1g", Int64(1 << 30)), ("512k", Int64(512 << 10)), ("100", Int64(100)), ("2MiB", Int64(2 << 20)), ("1.5k", Int64(1536))])
func byteSizesParseAsDockerDoes(text: String, bytes: Int64) {
    #expect(ByteSize.parse(text) == bytes)
}

@Test(arguments: [
    ("SIGTERM", true), ("TERM", true), ("9", true), ("sigkill", true), ("SIGRTMIN+3", true),
    ("SIGNOPE", false), ("0", false), ("65", false), ("", false),
])
func stopSignals(text: String, valid: Bool) {
    #expect(Signals.isValid(text) == valid)
}

@Test(arguments: [
    ("build/**/*.o", "build/a/b/c.o", true),
    ("build/**/*.o", "build/c.o", true),
    ("build/**/*.o", "src/c.o", false),
    ("*/tmp", "a/tmp", true),
    ("*/tmp", "a/b/tmp", false),
    ("*/tmp", "a/tmp/x", true),
    (".git", ".git/HEAD", true),
    ("*.tar.*", "x.tar.gz", true),
    ("a?c", "a/c", false),
    ("**/.DS_Store", "deep/down/.DS_Store", true),
    ("secret*\n!secret-public.txt", "secret-key.pem", true),
    ("secret*\n!secret-public.txt", "secret-public.txt", false),
    ("[ab]*\n![a]x", "ax", false),
    ("[ab]*\n![a]x", "bx", true),
])
func moreIgnorePatterns(patterns: String, path: String, excluded: Bool) throws {
    #expect(try DockerIgnore(text: patterns).isExcluded(path) == excluded)
}

@Test(arguments: [
    ("FROM a\nRUN echo ${X", "FROM a\nRUN echo ${X"),
])
func runIsNotExpandedAtParseTime(text: String, _ unused: String) throws {
    // A broken ${ in a RUN command is the shell's business, not a parse error.
    #expect(try Dockerfile.parse(text).stages[0].instructions.count == 1)
}

@Test(arguments: [
    ("FROM a\n\n\n# c\nRUN x", 5),
    ("FROM a\nRUN a \\\n b \\\n c\nRUN y", 5),
    ("FROM a\nCOPY <<EOF /x\n1\n2\n3\nEOF\nRUN y", 7),
])
func lineNumbersCountEveryLine(text: String, lastLine: Int) throws {
    #expect(try Dockerfile.parse(text).stages[0].instructions.last?.line == lastLine)
}

@Test(arguments: [
    "FROM scratch\nRUN --mount=type=cache,target=/c --mount=type=cache,target=/d true",
    "FROM scratch\nCOPY --exclude=a --exclude=b x y",
])
func listFlagsRepeat(text: String) throws {
    #expect(try Dockerfile.parse(text).stages[0].instructions.count == 1)
}

@Test(arguments: [
    ("RUN --network=none true", NetworkMode.none),
    ("RUN --network=host true", NetworkMode.host),
    ("RUN --network=default true", NetworkMode.default),
])
func networkModes(line: String, mode: NetworkMode) throws {
    #expect(try run(line).network == mode)
}

@Test func securityInsecureIsParsedForThePolicyToDecide() throws {
    #expect(try run("RUN --security=insecure true").security == .insecure)
}

@Test func flagEndMarkerStopsFlagParsing() throws {
    let r = try run("RUN -- --not-a-flag")
    #expect(r.command.arguments == ["--not-a-flag"])
    #expect(r.mounts.isEmpty)
}

@Test func quotedFlagValuesLoseTheirQuotes() throws {
    guard case .copy(let c) = try only("FROM scratch\nCOPY --chown=\"app user\":'grp' a b") else { Issue.record("COPY"); return }
    #expect(c.chown == "app user:grp")
}
