import Testing
@testable import Dockerfile

@Test func parsesTheIssueExample() throws {
    let text = """
    # syntax=docker/dockerfile:experimental
    FROM alpine AS builder
    RUN --mount=type=secret,id=mysecret \\
        --mount=type=cache,target=/tmp/cache \\
        apk add --update curl
    """
    let df = try Dockerfile.parse(text)
    #expect(df.syntax == "docker/dockerfile:experimental")
    #expect(df.stages.count == 1)
    #expect(df.stages[0].name == "builder")
    let run = df.stages[0].instructions[0]
    #expect(run.line == 3 && run.endLine == 5)
    guard case .run(let r) = run.command else { Issue.record("not RUN"); return }
    #expect(r.mounts.map(\.kind) == [.secret, .cache])
    #expect(r.mounts[0].secretID == "mysecret")
    #expect(r.mounts[1].target == "/tmp/cache")
    #expect(r.command.arguments == ["apk add --update curl"])
}
