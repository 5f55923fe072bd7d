import Testing
@testable import Dockerfile

func plan(_ text: String, target: String? = nil) throws -> BuildPlan {
    try BuildPlan(try Dockerfile.parse(text), options: BuildOptions(target: target))
}

func planError(_ text: String, target: String? = nil) -> String? {
    do {
        _ = try plan(text, target: target)
        return nil
    } catch let error as DockerfileError {
        return error.description
    } catch {
        return "\(error)"
    }
}

let multiStage = """
FROM busybox AS deps
RUN fetch
FROM busybox AS tools
RUN build-tools
FROM deps AS build
COPY --from=tools /bin/t /bin/t
RUN --mount=type=bind,from=deps,source=/d,target=/d make
FROM scratch AS unused
FROM alpine AS final
COPY --from=build /out /app
COPY --from=1 /bin/t /t
COPY --from=ghcr.io/org/helper:1 /h /h
"""

@Test func onlyTheStagesTheTargetNeedsAreRunInDependencyOrder() throws {
    let p = try plan(multiStage)
    #expect(p.target == 4)
    #expect(p.stages.map(\.index) == [0, 1, 2, 4])
    #expect(p.planned(2)?.base == .stage(0))
    #expect(p.planned(2)?.dependencies == [0, 1])
    #expect(p.planned(4)?.dependencies == [1, 2])
    #expect(p.planned(4)?.images == ["ghcr.io/org/helper:1"])
    #expect(p.planned(4)?.base == .image("alpine"))
    #expect(p.planned(3) == nil)
}

@Test func independentStagesShareAWave() throws {
    #expect(try plan(multiStage).waves == [[0, 1], [2], [4]])
}

@Test func targetSelectsAStage() throws {
    let p = try plan(multiStage, target: "build")
    #expect(p.stages.map(\.index) == [0, 1, 2])
    #expect(try plan(multiStage, target: "Unused").stages.map(\.index) == [3])
}

@Test func unknownTargetIsNamedWithASuggestion() {
    #expect(planError(multiStage, target: "biuld") == "Dockerfile: target stage \"biuld\" could not be found (did you mean \"build\"?)")
    #expect(planError(multiStage, target: "zzz") == "Dockerfile: target stage \"zzz\" could not be found")
}

@Test func unknownFromNameIsAnImage() throws {
    let p = try plan("FROM scratch\nCOPY --from=nosuchstage /a /b")
    #expect(p.stages[0].images == ["nosuchstage"])
    #expect(p.stages[0].dependencies.isEmpty)
}

@Test func fromLaterStageNameIsAnImageButCopyFromLaterStageIsAnEdge() throws {
    let p = try plan("FROM scratch AS a\nCOPY --from=b /x /x\nFROM busybox AS b", target: "a")
    #expect(p.stages.map(\.index) == [1, 0])
    #expect(p.planned(0)?.dependencies == [1])
}

@Test(arguments: [
    ("FROM scratch AS a\nCOPY --from=a /x /y", "Dockerfile:2: circular dependency detected on stage: a"),
    ("FROM scratch AS a\nCOPY --from=b /x /x\nFROM scratch AS b\nCOPY --from=a /y /y", "Dockerfile:3: circular dependency detected on stage: b"),
    ("FROM scratch\nCOPY --from=5 /x /y", "Dockerfile:2: invalid stage index 5 in --from (the Dockerfile has stages 0 to 0)"),
    ("FROM scratch\nCOPY --from=0 /x /y", "Dockerfile:2: circular dependency detected on stage: 0"),
    ("ARG S=a\nFROM scratch AS a\nFROM scratch\nCOPY --from=$S /x /y", "Dockerfile:4: variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround"),
    ("ARG IMG\nFROM $IMG", "Dockerfile:2: base name ($IMG) should not be blank"),
    ("FROM --platform=linux/a/b/c busybox", "Dockerfile:1: failed to parse platform linux/a/b/c: \"linux/a/b/c\" is no os/arch[/variant]"),
    ("ARG V=${X:?required}\nFROM busybox", "Dockerfile:1: failed to process \"${X:?required}\": X: required"),
])
func graphErrors(text: String, description: String) {
    #expect(planError(text) == description)
}

@Test func baseStageOnbuildTriggersAddTheirEdges() throws {
    let p = try plan("FROM busybox AS assets\nFROM busybox AS base\nONBUILD COPY --from=assets /a /a\nFROM base")
    #expect(p.stages.map(\.index) == [0, 1, 2])
    #expect(p.planned(2)?.dependencies == [0, 1])
}

@Test func stageBaseMatchesTheLowerCaseNameExactly() throws {
    let p = try plan("FROM busybox AS Base\nFROM base")
    #expect(p.planned(1)?.base == .stage(0))
    // As BuildKit: `FROM BASE` names an image, not the stage (whose name is lower case).
    #expect(try plan("FROM busybox AS base\nFROM BASE").planned(1)?.base == .image("BASE"))
    #expect(try plan("FROM SCRATCH").stages[0].base == .image("SCRATCH"))
    // --from is case-insensitive.
    #expect(try plan("FROM busybox AS base\nFROM scratch\nCOPY --from=BASE / /").planned(1)?.dependencies == [0])
}

@Test func displayNamesForProgress() throws {
    let df = try Dockerfile.parse("FROM busybox AS builder\nRUN a\nFROM scratch\nCOPY --from=builder / /")
    #expect(df.stages.map(\.displayName) == ["builder", "1"])
}

@Test(arguments: [
    ("src/app.tar.gz", AddSource.local("src/app.tar.gz")),
    ("https://example.org/x.tgz", .url("https://example.org/x.tgz")),
    ("HTTP://example.org/x", .url("HTTP://example.org/x")),
    ("https://github.com/moby/buildkit.git", .git("https://github.com/moby/buildkit.git")),
    ("https://github.com/moby/buildkit.git#v0.12", .git("https://github.com/moby/buildkit.git#v0.12")),
    ("git@github.com:moby/buildkit.git", .git("git@github.com:moby/buildkit.git")),
    ("git://host/repo", .git("git://host/repo")),
    ("github.com/moby/buildkit", .git("github.com/moby/buildkit")),
])
func addSourcesAreClassified(source: String, kind: AddSource) {
    #expect(AddSource.classify(source) == kind)
}

@Test func addOfGitIsRefusedBeforeAnythingRuns() {
    #expect(planError("FROM scratch\nADD https://github.com/moby/buildkit.git /src")
            == "Dockerfile:2: ADD of a git repository (https://github.com/moby/buildkit.git) is not supported: clone it in a RUN step instead")
}

@Test func syntaxDirectiveIsReportedAsNotFetched() throws {
    let df = try Dockerfile.parse("# syntax=docker/dockerfile:1.7\nFROM scratch", file: "build/Dockerfile")
    #expect(df.syntaxNotice == "build/Dockerfile: # syntax=docker/dockerfile:1.7 is not fetched: agent build reads the Dockerfile with its built-in dockerfile:1 frontend")
    #expect(try Dockerfile.parse("FROM scratch").syntaxNotice == nil)
}

@Test(arguments: [
    ("a/b", "a/b" as String?), ("/a/./b/", "a/b"), ("./", ""), (".", ""), ("a/../b", "b"), ("*.go", "*.go"),
    ("../x", nil), ("a/../../x", nil), ("/..", nil), ("..", nil),
])
func contextSourcesStayInTheContext(source: String, relative: String?) {
    #expect(ContextPaths.relative(source) == relative)
}

@Test func copySourceOutsideTheContextIsRefusedBeforeAnythingRuns() {
    #expect(planError("FROM scratch\nCOPY ../secret /s") == "Dockerfile:2: COPY source \"../secret\" is outside the build context")
    #expect(planError("FROM scratch\nADD a/../../x /s") == "Dockerfile:2: ADD source \"a/../../x\" is outside the build context")
    // From another stage or image the path is that root's, not the context's.
    #expect(planError("FROM busybox AS b\nFROM scratch\nCOPY --from=b ../x /s") == nil)
    #expect(planError("FROM scratch\nADD https://example.org/../x /s") == nil)
}

@Test func expandedSourceOutsideTheContextIsRefusedByApply() {
    do {
        _ = try dispatch("FROM scratch\nARG UP=..\nCOPY $UP/etc /s")
        Issue.record("applied")
    } catch let error as DockerfileError {
        #expect(error.description == "Dockerfile:3: COPY source \"../etc\" is outside the build context")
    } catch { Issue.record("\(error)") }
}
