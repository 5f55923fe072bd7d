import Testing
@testable import Dockerfile

func parse(_ text: String) throws -> Dockerfile { try Dockerfile.parse(text) }

/// The instructions of the first stage.
func body(_ text: String) throws -> [Instruction] { try parse(text).stages[0].instructions }

func only(_ text: String) throws -> Command { try #require(body(text).first).command }

func parseError(_ text: String, file: String = "Dockerfile") -> DockerfileError? {
    do {
        _ = try Dockerfile.parse(text, file: file)
        return nil
    } catch {
        return error
    }
}

// MARK: - Directives

@Test func escapeDirectiveChangesContinuation() throws {
    let df = try parse("# escape=`\nFROM scratch\nRUN dir c:\\ `\n  && echo x\n")
    #expect(df.escape == "`")
    guard case .run(let r) = df.stages[0].instructions[0].command else { Issue.record("RUN"); return }
    #expect(r.command.arguments == ["dir c:\\   && echo x"])
}

@Test(arguments: [
    ("# syntax=docker/dockerfile:1\nFROM scratch", "docker/dockerfile:1"),
    ("#syntax=a/b\nFROM scratch", "a/b"),
    ("# SYNTAX = x/y:1 \nFROM scratch", "x/y:1"),
    ("# escape=\\\n# syntax=z\nFROM scratch", "z"),
])
func syntaxDirectiveIsKept(text: String, syntax: String) throws {
    #expect(try parse(text).syntax == syntax)
}

@Test(arguments: [
    "\n# syntax=x\nFROM scratch",                 // a blank line ends the directives
    "# hello\n# syntax=x\nFROM scratch",          // so does a comment
    "FROM scratch\n# syntax=x",                   // and an instruction
    "# unknown=1\n# syntax=x\nFROM scratch",      // an unknown directive is a comment
])
func directivesOnlyAtTheVeryTop(text: String) throws {
    #expect(try parse(text).syntax == nil)
}

@Test func repeatedDirectiveIsAnError() {
    let e = parseError("# escape=\\\n# escape=`\nFROM scratch")
    #expect(e?.description == "Dockerfile:2: only one escape parser directive can be used")
    #expect(e?.code == .directive)
}

@Test func badEscapeTokenIsAnError() {
    #expect(parseError("# escape=x\nFROM scratch")?.description == "Dockerfile:1: invalid escape token 'x' does not match ` or \\")
}

@Test func byteOrderMarkIsSkipped() throws {
    #expect(try parse("\u{FEFF}# syntax=a\nFROM scratch").syntax == "a")
}

// MARK: - Lines

@Test(arguments: [
    ("FROM scratch\nRUN a \\\n  b", "a   b"),
    ("FROM scratch\nRUN a \\  \n  b", "a   b"),                   // blanks after the escape
    ("FROM scratch\nRUN a \\\n# comment\n  b", "a   b"),          // comment lines dropped
    ("FROM scratch\nRUN a \\\n  # indented comment\n  b", "a   b"),
    ("FROM scratch\nRUN a \\\n\n  b", "a   b"),                   // empty continuation line
    ("FROM scratch\nRUN a \\", "a"),                               // continuation at EOF
    ("FROM scratch\nRUN a \\\\", "a \\\\"),                        // a doubled escape ends the line
    ("FROM scratch\nRUN a\\\nb", "ab"),
    ("FROM scratch\n   RUN   a  ", "a"),                           // leading/trailing blanks
    ("FROM scratch\r\nRUN a \\\r\n b\r\n", "a  b"),                // CRLF
    ("FROM scratch\nRUN echo '#not a comment'", "echo '#not a comment'"),
])
func continuationsFollowBuildKit(text: String, command: String) throws {
    guard case .run(let r) = try only(text) else { Issue.record("RUN"); return }
    #expect(r.command.arguments == [command])
}

@Test func emptyContinuationLineWarns() throws {
    let df = try parse("FROM scratch\nRUN a \\\n\n  b\n")
    #expect(df.warnings.count == 1)
    #expect(df.warnings[0].message.hasPrefix("Empty continuation line found in: RUN a"))
}

@Test func linesAndOriginalTextAreKept() throws {
    let df = try parse("# c\nARG V=1\n\nFROM scratch AS base\nRUN a \\\n  b\nCOPY <<EOF /x\nhi\nEOF\nCMD [\"x\"]\n")
    #expect(df.globalArgs.map(\.line) == [2])
    #expect(df.stages[0].from.line == 4)
    let insts = df.stages[0].instructions
    #expect(insts.map(\.line) == [5, 7, 10])
    #expect(insts.map(\.endLine) == [6, 9, 10])
    #expect(insts[0].original == "RUN a   b")
    #expect(insts.map(\.keyword) == ["RUN", "COPY", "CMD"])
}

@Test func keywordsAreCaseInsensitive() throws {
    let df = try parse("from scratch as Build\nrun echo\nCoPy a b\n")
    #expect(df.stages[0].name == "build")
    #expect(df.stages[0].instructions.map(\.keyword) == ["RUN", "COPY"])
}

// MARK: - JSON and shell forms

@Test(arguments: [
    ("CMD [\"a\", \"b\"]", ["a", "b"], false),
    ("CMD [ \"a\" ]", ["a"], false),
    ("CMD []", [], false),
    ("CMD [\"a\\\"b\", \"\\u00e9\"]", ["a\"b", "é"], false),
    ("CMD [a]", ["[a]"], true),                           // not JSON: shell form
    ("CMD [\"a\" \"b\"]", ["[\"a\" \"b\"]"], true),       // missing comma: shell form
    ("CMD [\"a\",]", ["[\"a\",]"], true),                 // trailing comma: shell form
    ("CMD [\"a\"] x", ["[\"a\"] x"], true),               // trailing text: shell form
    ("CMD '[\"a\"]'", ["'[\"a\"]'"], true),
    ("CMD echo \"$X\"", ["echo \"$X\""], true),
    ("ENTRYPOINT [\"/bin/sh\", \"-c\"]", ["/bin/sh", "-c"], false),
])
func jsonFormOnlyForValidArraysOfStrings(line: String, args: [String], shell: Bool) throws {
    let c = try only("FROM scratch\n" + line)
    let cl: CommandLine
    switch c {
    case .cmd(let l), .entrypoint(let l): cl = l
    default: Issue.record("not CMD"); return
    }
    #expect(cl.arguments == args)
    #expect(cl.prependsShell == shell)
}

@Test(arguments: ["CMD [\"a\", 1]", "CMD [\"a\", null]", "RUN [[\"a\"]]", "VOLUME [\"/a\", true]"])
func jsonArrayOfNonStringsIsAnError(line: String) {
    #expect(parseError("FROM scratch\n" + line)?.description
            == "Dockerfile:2: when using JSON array syntax, arrays must be comprised of strings only")
}

// MARK: - ENV, LABEL, ARG

@Test(arguments: [
    ("ENV A=1", [KeyValue(key: "A", value: "1")]),
    ("ENV A=1 B=\"2 3\" C='x y'", [KeyValue(key: "A", value: "1"), KeyValue(key: "B", value: "\"2 3\""), KeyValue(key: "C", value: "'x y'")]),
    ("ENV A B C", [KeyValue(key: "A", value: "B C", legacyForm: true)]),
    ("ENV A  \"b c\"", [KeyValue(key: "A", value: "\"b c\"", legacyForm: true)]),
    ("ENV A=a\\ b", [KeyValue(key: "A", value: "a\\ b")]),
    ("ENV A=", [KeyValue(key: "A", value: "")]),
    ("ENV A=x=y", [KeyValue(key: "A", value: "x=y")]),
])
func envForms(line: String, pairs: [KeyValue]) throws {
    #expect(try only("FROM scratch\n" + line) == .env(pairs))
}

@Test func labelTakesSeveralPairs() throws {
    #expect(try only("FROM scratch\nLABEL a=1 \"b c\"=2") == .label([KeyValue(key: "a", value: "1"), KeyValue(key: "\"b c\"", value: "2")]))
}

@Test func argTakesNamesAndDefaults() throws {
    #expect(try only("FROM scratch\nARG A B=2 C=\"x y\"") == .arg([
        ArgDeclaration(name: "A", defaultValue: nil), ArgDeclaration(name: "B", defaultValue: "2"),
        ArgDeclaration(name: "C", defaultValue: "\"x y\""),
    ]))
}

@Test(arguments: [
    ("ENV", "ENV requires at least one argument"),
    ("ENV A", "ENV must have two arguments"),
    ("ENV A=1 B", "Syntax error - can't find = in \"B\". Must be of the form: name=value"),
    ("ENV =1", "ENV names can not be blank"),
    ("LABEL", "LABEL requires at least one argument"),
    ("ARG", "ARG requires at least one argument"),
    ("ARG =x", "ARG names can not be blank"),
])
func keyValueErrors(line: String, message: String) {
    #expect(parseError("FROM scratch\n" + line)?.description == "Dockerfile:2: " + message)
}

// MARK: - FROM

@Test(arguments: [
    ("FROM alpine", "alpine", nil as String?, nil as String?),
    ("FROM alpine:3.20 AS builder", "alpine:3.20", "builder", nil),
    ("FROM alpine as Builder", "alpine", "builder", nil),
    ("FROM --platform=$BUILDPLATFORM golang AS build", "golang", "build", "$BUILDPLATFORM"),
    ("FROM ${IMG:-busybox}", "${IMG:-busybox}", nil, nil),
    ("FROM scratch", "scratch", nil, nil),
])
func fromForms(line: String, image: String, name: String?, platform: String?) throws {
    let s = try parse(line).stages[0]
    #expect(s.base.image == image)
    #expect(s.name == name)
    #expect(s.base.platform == platform)
}

@Test(arguments: [
    ("FROM", "FROM requires either one or three arguments"),
    ("FROM a b", "FROM requires either one or three arguments"),
    ("FROM a AS b c", "FROM requires either one or three arguments"),
    ("FROM a AS 1st", "invalid name for build stage: \"1st\", name can't start with a number or contain symbols"),
    ("FROM a AS b$c", "invalid name for build stage: \"b$c\", name can't start with a number or contain symbols"),
    ("FROM --plat=x a", "unknown flag: --plat for FROM (did you mean --platform?)"),
])
func fromErrors(line: String, message: String) {
    #expect(parseError(line)?.description == "Dockerfile:1: " + message)
}

// MARK: - COPY / ADD

@Test func copyFlagsAndSources() throws {
    guard case .copy(let c) = try only("FROM scratch\nCOPY --from=build --chown=1:2 --chmod=0755 --link --exclude=*.o --exclude=x a b* /dst/") else {
        Issue.record("COPY"); return
    }
    #expect(c.sources == ["a", "b*"])
    #expect(c.destination == "/dst/")
    #expect(c.from == "build")
    #expect(c.chown == "1:2")
    #expect(c.chmod == "0755")
    #expect(c.link)
    #expect(c.excludes == ["*.o", "x"])
    #expect(!c.isAdd)
}

@Test func copyJSONFormKeepsBlanks() throws {
    guard case .copy(let c) = try only("FROM scratch\nCOPY [\"a b\", \"c\", \"/d e/\"]") else { Issue.record("COPY"); return }
    #expect(c.sources == ["a b", "c"])
    #expect(c.destination == "/d e/")
}

@Test func addTakesItsOwnFlags() throws {
    guard case .add(let c) = try only("FROM scratch\nADD --checksum=sha256:abc --keep-git-dir=false --unpack=true https://x/y.tgz /z") else {
        Issue.record("ADD"); return
    }
    #expect(c.isAdd)
    #expect(c.checksum == "sha256:abc")
    #expect(c.keepGitDir == false)
    #expect(c.unpack == true)
    #expect(c.sources == ["https://x/y.tgz"])
}

@Test(arguments: [
    ("COPY a", "COPY requires at least two arguments, but only one was provided. Destination could not be determined"),
    ("ADD a", "ADD requires at least two arguments, but only one was provided. Destination could not be determined"),
    ("COPY --from=a", "COPY requires at least two arguments, but only one was provided. Destination could not be determined"),
    ("ADD --from=x a b", "unknown flag: --from for ADD (it takes --checksum, --chmod, --chown, --exclude, --keep-git-dir, --link, --unpack)"),
    ("COPY --chown a b", "missing a value on flag: --chown"),
    ("COPY --link=maybe a b", "expecting boolean value for flag --link, not: maybe"),
    ("COPY --from=a --from=b x y", "duplicate flag specified: --from"),
    ("COPY a <<EOF\nx\nEOF", "COPY cannot accept a heredoc as a destination"),
])
func copyErrors(line: String, message: String) {
    #expect(parseError("FROM scratch\n" + line)?.description == "Dockerfile:2: " + message)
}

// MARK: - Other instructions

@Test func simpleInstructions() throws {
    let insts = try body("""
    FROM scratch
    WORKDIR /a b
    USER app:app
    STOPSIGNAL SIGTERM
    EXPOSE 8080 80/udp 443
    VOLUME /data /logs
    VOLUME ["/v w"]
    SHELL ["/bin/bash", "-ec"]
    MAINTAINER someone
    ONBUILD RUN echo hi
    """)
    #expect(insts.map(\.command) == [
        .workdir("/a b"), .user("app:app"), .stopSignal("SIGTERM"), .expose(["443", "80/udp", "8080"]),
        .volume(["/data", "/logs"]), .volume(["/v w"]), .shell(["/bin/bash", "-ec"]), .maintainer("someone"),
        .onbuild("RUN echo hi"),
    ])
}

@Test(arguments: [
    ("HEALTHCHECK NONE", ["NONE"], Int64(0), 0),
    ("HEALTHCHECK CMD curl -f http://x/", ["CMD-SHELL", "curl -f http://x/"], Int64(0), 0),
    ("HEALTHCHECK --interval=5m --timeout=3s --retries=3 CMD [\"/bin/check\", \"-q\"]", ["CMD", "/bin/check", "-q"], Int64(300_000_000_000), 3),
    ("HEALTHCHECK --interval=1m30s cmd true", ["CMD-SHELL", "true"], Int64(90_000_000_000), 0),
])
func healthchecks(line: String, test: [String], interval: Int64, retries: Int) throws {
    guard case .healthcheck(let h) = try only("FROM scratch\n" + line) else { Issue.record("HEALTHCHECK"); return }
    #expect(h.test == test)
    #expect(h.interval == interval)
    #expect(h.retries == retries)
}

@Test(arguments: [
    ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
    ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
    ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
    ("HEALTHCHECK RUN x", "Unknown type \"RUN\" in HEALTHCHECK (try CMD)"),
    ("HEALTHCHECK --interval=1us CMD x", "Interval \"interval\" cannot be less than 1ms"),
    ("HEALTHCHECK --interval=5 CMD x", "time: invalid duration \"5\" for HEALTHCHECK --interval"),
    ("HEALTHCHECK --retries=-1 CMD x", "--retries cannot be negative (-1)"),
    ("SHELL /bin/sh -c", "SHELL requires the arguments to be in JSON form, such as SHELL [\"/bin/sh\", \"-c\"]; got: /bin/sh -c"),
    ("SHELL", "SHELL requires at least one argument"),
    ("WORKDIR", "WORKDIR requires exactly one argument"),
    ("USER", "USER requires exactly one argument"),
    ("EXPOSE", "EXPOSE requires at least one argument"),
    ("VOLUME [\"\"]", "VOLUME specified can not be an empty string"),
    ("ONBUILD", "ONBUILD requires at least one argument"),
    ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
    ("ONBUILD maintainer x", "MAINTAINER isn't allowed as an ONBUILD trigger"),
    ("ONBUILD RUNN x", "unknown instruction \"RUNN\" (did you mean \"RUN\"?)"),
    ("RUN", "RUN requires at least one argument"),
    ("RUN --network=bridge x", "unsupported network mode \"bridge\" (RUN --network takes default, none or host)"),
    ("RUN --security=root x", "unsupported security mode \"root\" (RUN --security takes sandbox or insecure)"),
    ("RUN --device=/dev/x y", "unknown flag: --device for RUN (it takes --mount, --network, --security)"),
    ("WORKDIR --x=1 /a", "unknown flag: --x for WORKDIR"),
])
func instructionErrors(line: String, message: String) {
    #expect(parseError("FROM scratch\n" + line)?.description == "Dockerfile:2: " + message)
}

// MARK: - Whole-file errors

@Test(arguments: [
    ("FROM scratch\nRUNN make", "Dockerfile:2: unknown instruction \"RUNN\" (did you mean \"RUN\"?)"),
    ("FROM scratch\ncopi a b", "Dockerfile:2: unknown instruction \"copi\" (did you mean \"COPY\"?)"),
    ("FROM scratch\nENTRYPOINTT x", "Dockerfile:2: unknown instruction \"ENTRYPOINTT\" (did you mean \"ENTRYPOINT\"?)"),
    ("FROM scratch\nXYZZY x", "Dockerfile:2: unknown instruction \"XYZZY\""),
    ("", "Dockerfile: the Dockerfile has no instructions"),
    ("# only\n\n# comments\n", "Dockerfile: the Dockerfile has no instructions"),
    ("ARG A=1\n", "Dockerfile:1: the Dockerfile has no FROM instruction"),
    ("RUN x\nFROM scratch", "Dockerfile:1: RUN before the first FROM: only ARG may come before FROM"),
    ("ARG A\nENV B=1\nFROM scratch", "Dockerfile:2: ENV before the first FROM: only ARG may come before FROM"),
    ("FROM a AS x\nFROM b AS X", "Dockerfile:2: duplicate stage name \"x\" (first used on line 1)"),
    ("FROM scratch\nRUN <<EOF\nno end", "Dockerfile:2: unterminated heredoc \"EOF\""),
])
func fileErrors(text: String, description: String) {
    #expect(parseError(text)?.description == description)
}

@Test func errorsNameTheFileAndInstruction() {
    let e = parseError("FROM scratch\n\nRUNN x", file: "ci/Dockerfile.release")
    #expect(e?.description == "ci/Dockerfile.release:3: unknown instruction \"RUNN\" (did you mean \"RUN\"?)")
    #expect(e?.file == "ci/Dockerfile.release")
    #expect(e?.line == 3)
    #expect(e?.instruction == "RUNN")
    #expect(e?.code == .unknownInstruction)
}

@Test func oversizedDockerfileIsRefused() {
    let text = "FROM scratch\n" + String(repeating: "# padding\n", count: DockerfileLimits.maxBytes / 10 + 1)
    #expect(parseError(text)?.code == .tooLarge)
    let lines = "FROM scratch\n" + String(repeating: "\n", count: DockerfileLimits.maxLines)
    #expect(parseError(lines)?.code == .tooLarge)
}

@Test func largeDockerfileParsesQuickly() throws {
    var text = "FROM scratch\n"
    let line = "RUN --mount=type=cache,target=/c echo " + String(repeating: "word ", count: 30) + "\\\n  && true\n"
    while text.utf8.count + line.utf8.count < DockerfileLimits.maxBytes && text.utf8.count < 900_000 { text += line }
    let clock = ContinuousClock()
    let start = clock.now
    let df = try Dockerfile.parse(text)
    let elapsed = clock.now - start
    #expect(df.stages[0].instructions.count > 4000)
    #expect(elapsed < .seconds(20))
}
