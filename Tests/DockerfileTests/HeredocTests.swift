import Testing
@testable import Dockerfile

func run(_ text: String) throws -> RunCommand {
    guard case .run(let r) = try only("FROM scratch\n" + text) else { throw DockerfileError(.arguments, "not RUN") }
    return r
}

@Test func runHeredocIsTheScript() throws {
    let r = try run("RUN <<EOF\necho a\necho $HOME\nEOF\n")
    #expect(r.command.heredocs == [Heredoc(name: "EOF", content: "echo a\necho $HOME\n", expands: true, stripsTabs: false, fileDescriptor: 0)])
    let resolved = r.command.resolved(shell: ["/bin/sh", "-c"])
    #expect(resolved.arguments == ["/bin/sh", "-c", "echo a\necho $HOME\n"])
    #expect(resolved.files.isEmpty)
}

@Test func tabsAreStrippedForDash() throws {
    let r = try run("RUN <<-EOF\n\techo a\n\t\techo b\n  echo c\n\tEOF\n")
    #expect(r.command.heredocs[0].stripsTabs)
    #expect(r.command.heredocs[0].content == "\techo a\n\t\techo b\n  echo c\n")
    #expect(r.command.heredocs[0].text == "echo a\necho b\n  echo c\n")
    #expect(r.command.resolved(shell: ["sh", "-c"]).arguments == ["sh", "-c", "echo a\necho b\n  echo c\n"])
}

@Test(arguments: [
    ("RUN <<EOF\nx\nEOF", true),
    ("RUN <<\"EOF\"\nx\nEOF", false),
    ("RUN <<'EOF'\nx\nEOF", false),
    ("RUN <<E\"O\"F\nx\nEOF", false),
    ("RUN << EOF\nx\nEOF", true),
])
func quotedDelimitersTurnExpansionOff(text: String, expands: Bool) throws {
    let r = try run(text)
    #expect(r.command.heredocs.count == 1)
    #expect(r.command.heredocs[0].name == "EOF")
    #expect(r.command.heredocs[0].expands == expands)
}

@Test func commandWithHeredocGoesWholeToTheShell() throws {
    let r = try run("RUN python3 <<EOF\nprint(1)\nEOF\n")
    #expect(r.command.resolved(shell: ["/bin/sh", "-c"]).arguments == ["/bin/sh", "-c", "python3 <<EOF\nprint(1)\nEOF"])
}

@Test func severalHeredocsInOneInstruction() throws {
    let r = try run("RUN cat <<A && cat <<-B >/x\none\nA\n\ttwo\n\tB\nRUN next\n")
    #expect(r.command.heredocs.map(\.name) == ["A", "B"])
    #expect(r.command.heredocs.map(\.content) == ["one\n", "\ttwo\n"])
    #expect(r.command.resolved(shell: ["sh", "-c"]).arguments == ["sh", "-c", "cat <<A && cat <<-B >/x\none\nA\n\ttwo\nB"])
    let insts = try body("FROM scratch\nRUN cat <<A && cat <<-B >/x\none\nA\n\ttwo\n\tB\nRUN next\n")
    #expect(insts.count == 2)
    #expect(insts[0].endLine == 6)
    #expect(insts[1].line == 7)
}

@Test func shebangHeredocBecomesAFile() throws {
    let r = try run("RUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\n")
    let resolved = r.command.resolved(shell: ["/bin/sh", "-c"])
    #expect(resolved.arguments == ["/bin/sh", "-c", "/dev/pipes/EOF"])
    #expect(resolved.files == [InlineFile(path: "/dev/pipes/EOF", contents: "#!/usr/bin/env python3\nprint(1)\n", mode: 0o755)])
}

@Test func fileDescriptorIsKept() throws {
    let r = try run("RUN cat 3<<EOF\nx\nEOF")
    #expect(r.command.heredocs[0].fileDescriptor == 3)
}

@Test func copyHeredocSources() throws {
    guard case .copy(let c) = try only("FROM scratch\nCOPY <<a.txt <<-\"b.sh\" /dir/\nhello $X\na.txt\n\techo\n\tb.sh\n") else {
        Issue.record("COPY"); return
    }
    #expect(c.sources.isEmpty)
    #expect(c.destination == "/dir/")
    #expect(c.inlineSources == [InlineSource(path: "a.txt", data: "hello $X\n", expands: true),
                                InlineSource(path: "b.sh", data: "echo\n", expands: false)])
}

@Test func heredocTerminatorMustMatchExactly() throws {
    // " EOF" and "EOF " are body lines; only "EOF" ends it.
    let r = try run("RUN <<EOF\n EOF\nEOF \nEOF\n")
    #expect(r.command.heredocs[0].content == " EOF\nEOF \n")
}

@Test func jsonFormTakesNoHeredoc() throws {
    let insts = try body("FROM scratch\nRUN [\"cat\", \"<<EOF\"]\nRUN echo\n")
    #expect(insts.count == 2)
    guard case .run(let r) = insts[0].command else { Issue.record("RUN"); return }
    #expect(r.command.heredocs.isEmpty)
}

@Test func otherInstructionsTakeNoHeredoc() throws {
    let insts = try body("FROM scratch\nENV A=<<EOF\nRUN echo\n")
    #expect(insts.count == 2)
}

@Test func heredocInsideOnbuildIsPartOfTheTrigger() throws {
    let cmd = try only("FROM scratch\nONBUILD RUN <<EOF\necho hi\nEOF\n")
    #expect(cmd == .onbuild("RUN <<EOF\necho hi\nEOF"))
    let trigger = try Dockerfile.parseInstruction("RUN <<EOF\necho hi\nEOF", line: 4)
    guard case .run(let r) = trigger.command else { Issue.record("RUN"); return }
    #expect(r.command.heredocs.map(\.content) == ["echo hi\n"])
    #expect(trigger.line == 4)
}

@Test func heredocLessThanIsNotAMarker() throws {
    let r = try run("RUN echo a<b && echo 1 < /dev/null")
    #expect(r.command.heredocs.isEmpty)
}
