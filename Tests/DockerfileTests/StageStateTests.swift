import Testing
@testable import Dockerfile

/// Plans `text` and applies every instruction of stage `index` on `base`.
func dispatch(_ text: String, stage index: Int? = nil, base: ImageConfig = ImageConfig(),
              options: BuildOptions = BuildOptions()) throws -> (StageState, [AppliedInstruction]) {
    let df = try Dockerfile.parse(text)
    let plan = try BuildPlan(df, options: options)
    let i = index ?? df.stages.count - 1
    var state = try plan.stageState(for: i, base: base)
    var applied: [AppliedInstruction] = []
    for inst in df.stages[i].instructions { applied.append(try state.apply(inst)) }
    return (state, applied)
}

let linuxAMD64 = BuildOptions(targetPlatform: Platform(os: "linux", architecture: "amd64"),
                              buildPlatform: Platform(os: "linux", architecture: "arm64", variant: "v8"))

@Test func globalArgsExpandFromLines() throws {
    let plan = try BuildPlan(try Dockerfile.parse("ARG V=3.20\nARG IMG=alpine:$V\nFROM $IMG AS a\nFROM ${REG:-docker.io}/x:$V"))
    #expect(plan.stages.map(\.base) == [.image("docker.io/x:3.20")])
    let all = try BuildPlan(try Dockerfile.parse("ARG V=3.20\nARG IMG=alpine:$V\nFROM $IMG AS a\nFROM scratch\nCOPY --from=a / /"))
    #expect(all.stages.map(\.base) == [.image("alpine:3.20"), .scratch])
}

@Test func buildArgOverridesGlobalDefault() throws {
    let plan = try BuildPlan(try Dockerfile.parse("ARG V=1\nFROM busybox:$V"), options: BuildOptions(buildArgs: ["V": "2"]))
    #expect(plan.stages[0].base == .image("busybox:2"))
    #expect(plan.unusedBuildArgs.isEmpty)
}

@Test func globalArgIsInvisibleInAStageUntilRedeclared() throws {
    let (s1, _) = try dispatch("ARG V=1\nFROM scratch\nENV X=\"[$V]\"")
    #expect(s1.config.env.contains("X=[]"))
    let (s2, _) = try dispatch("ARG V=1\nFROM scratch\nARG V\nENV X=\"[$V]\"")
    #expect(s2.config.env.contains("X=[1]"))
    let (s3, _) = try dispatch("ARG V=1\nFROM scratch\nARG V\nENV X=$V", options: BuildOptions(buildArgs: ["V": "9"]))
    #expect(s3.config.env.contains("X=9"))
}

@Test func stageArgDefaultAndBuildArg() throws {
    let (s, _) = try dispatch("FROM scratch\nARG A=1 B=$A\nENV OUT=$A-$B")
    #expect(s.config.env.contains("OUT=1-1"))
    let (t, _) = try dispatch("FROM scratch\nARG A=1 B=$A\nENV OUT=$A-$B", options: BuildOptions(buildArgs: ["A": "5"]))
    #expect(t.config.env.contains("OUT=5-5"))
}

@Test func argsReachRunButNotTheConfig() throws {
    let (s, applied) = try dispatch("FROM scratch\nARG TOKEN=abc\nRUN echo $TOKEN")
    #expect(!s.config.env.contains { $0.hasPrefix("TOKEN=") })
    #expect(applied[1].environment.contains("TOKEN=abc"))
    #expect(applied[1].args.environment == ["TOKEN=abc"])
}

@Test func envOverridesArgOfTheSameName() throws {
    let (s, applied) = try dispatch("FROM scratch\nARG V=arg\nENV V=env\nRUN echo $V", options: BuildOptions(buildArgs: ["V": "cli"]))
    #expect(s.config.env.contains("V=env"))
    #expect(applied[2].variables["V"] == "env")
}

@Test func envOnOneLineSeesTheValuesBeforeIt() throws {
    let (s, _) = try dispatch("FROM scratch\nENV A=1\nENV A=2 B=$A")
    #expect(s.config.env.contains("A=2"))
    #expect(s.config.env.contains("B=1"))
}

@Test func envLegacyFormAndQuotes() throws {
    let (s, _) = try dispatch("FROM scratch\nENV GREETING hello   world\nENV Q=\"a b\" R='$Q' S=a\\ b")
    #expect(s.config.env.contains("GREETING=hello   world"))
    #expect(s.config.env.contains("Q=a b"))
    #expect(s.config.env.contains("R=$Q"))
    #expect(s.config.env.contains("S=a b"))
}

@Test func baseEnvIsSeenAndPathIsDefaulted() throws {
    let (s, _) = try dispatch("FROM scratch\nENV P2=$PATH:/x", base: ImageConfig(env: ["HOME=/root"]))
    #expect(s.config.env == ["HOME=/root", "PATH=" + ImageConfig.defaultPath, "P2=" + ImageConfig.defaultPath + ":/x"])
    let (t, _) = try dispatch("FROM scratch", base: ImageConfig(env: ["PATH=/bin"]))
    #expect(t.config.env == ["PATH=/bin"])
}

@Test func predefinedPlatformArgs() throws {
    let plan = try BuildPlan(try Dockerfile.parse("FROM --platform=$BUILDPLATFORM busybox:$TARGETARCH\nARG TARGETOS TARGETARCH BUILDPLATFORM\nENV T=$TARGETOS/$TARGETARCH B=$BUILDPLATFORM"),
                             options: linuxAMD64)
    #expect(plan.stages[0].base == .image("busybox:amd64"))
    #expect(plan.stages[0].platform == Platform(os: "linux", architecture: "arm64", variant: "v8"))
    let (s, _) = try dispatch("FROM scratch\nARG TARGETOS TARGETARCH BUILDPLATFORM\nENV T=$TARGETOS/$TARGETARCH B=$BUILDPLATFORM", options: linuxAMD64)
    #expect(s.config.env.contains("T=linux/amd64"))
    #expect(s.config.env.contains("B=linux/arm64/v8"))
    let (u, _) = try dispatch("FROM scratch\nENV T=[$TARGETARCH]", options: linuxAMD64)
    #expect(u.config.env.contains("T=[]"))
}

@Test func proxyBuildArgsReachRunOutsideTheCacheKey() throws {
    let opts = BuildOptions(buildArgs: ["HTTP_PROXY": "http://proxy:3128", "no_proxy": "localhost"])
    let (_, applied) = try dispatch("FROM scratch\nRUN echo hi", options: opts)
    #expect(applied[0].proxyEnvironment == ["HTTP_PROXY=http://proxy:3128", "no_proxy=localhost"])
    #expect(applied[0].environment.contains("HTTP_PROXY=http://proxy:3128"))
    #expect(!applied[0].cacheKeyText.contains("proxy:3128"))
    let (_, declared) = try dispatch("FROM scratch\nARG HTTP_PROXY\nRUN echo hi", options: opts)
    #expect(declared[1].cacheKeyText.contains("proxy:3128"))
    let plan = try BuildPlan(try Dockerfile.parse("FROM scratch"), options: opts)
    #expect(plan.unusedBuildArgs.isEmpty)
}

@Test func unusedBuildArgsAreReported() throws {
    let plan = try BuildPlan(try Dockerfile.parse("ARG G\nFROM scratch AS a\nARG USED\nFROM scratch\nARG FINAL"),
                             options: BuildOptions(buildArgs: ["G": "1", "USED": "2", "FINAL": "3", "TYPO": "4", "TARGETARCH": "x",
                                                                 "SOURCE_DATE_EPOCH": "0", "BUILDKIT_INLINE_CACHE": "1"]))
    // Stage a is not needed by the last stage, so USED is not consumed.
    #expect(plan.unusedBuildArgs == ["TYPO", "USED"])
    #expect(plan.unusedBuildArgsWarning == "[Warning] One or more build-args [TYPO USED] were not consumed")
}

@Test func workdirJoinsAndCleans() throws {
    let (s, applied) = try dispatch("FROM scratch\nWORKDIR /a\nWORKDIR b\nWORKDIR ../c/./d//\nENV D=/x\nWORKDIR $D/y")
    #expect(applied.map(\.workingDir) == ["/a", "/a/b", "/a/c/d", "/a/c/d", "/x/y"])
    #expect(s.config.workingDir == "/x/y")
    let (t, _) = try dispatch("FROM scratch\nWORKDIR rel", base: ImageConfig(workingDir: "/base"))
    #expect(t.config.workingDir == "/base/rel")
    let (u, _) = try dispatch("FROM scratch\nWORKDIR rel")
    #expect(u.config.workingDir == "/rel")
}

@Test func cmdEntrypointAndShell() throws {
    let (s, _) = try dispatch("FROM scratch\nCMD echo hi")
    #expect(s.config.cmd == ["/bin/sh", "-c", "echo hi"])
    let (t, _) = try dispatch("FROM scratch\nSHELL [\"/bin/bash\", \"-ec\"]\nENTRYPOINT run.sh\nCMD [\"--flag\"]")
    #expect(t.config.entrypoint == ["/bin/bash", "-ec", "run.sh"])
    #expect(t.config.cmd == ["--flag"])
    #expect(t.config.shell == ["/bin/bash", "-ec"])
}

@Test func entrypointResetsTheBaseCmdButNotTheStagesOwn() throws {
    let base = ImageConfig(cmd: ["sh"], entrypoint: nil)
    let (s, _) = try dispatch("FROM scratch\nENTRYPOINT [\"/e\"]", base: base)
    #expect(s.config.cmd == nil)
    let (t, _) = try dispatch("FROM scratch\nCMD [\"c\"]\nENTRYPOINT [\"/e\"]", base: base)
    #expect(t.config.cmd == ["c"])
    let (u, _) = try dispatch("FROM scratch\nENTRYPOINT []", base: ImageConfig(entrypoint: ["/old"]))
    #expect(u.config.entrypoint == nil)
}

@Test func configInstructions() throws {
    let (s, applied) = try dispatch("""
    FROM scratch
    ARG PORT=8080
    ENV APP=web
    LABEL org.opencontainers.image.title=$APP "multi word"="a b"
    EXPOSE $PORT 53/udp 9000-9002
    VOLUME /data $APP
    USER ${APP}:${APP}
    STOPSIGNAL SIGINT
    HEALTHCHECK --interval=30s CMD wget -q -O- http://localhost/
    ONBUILD COPY . /src
    MAINTAINER me@example.org
    """)
    #expect(s.config.labels == ["org.opencontainers.image.title": "web", "multi word": "a b"])
    #expect(s.config.exposedPorts == ["53/udp", "8080/tcp", "9000/tcp", "9001/tcp", "9002/tcp"])
    #expect(s.config.volumes == ["/data", "web"])
    #expect(s.config.user == "web:web")
    #expect(s.config.stopSignal == "SIGINT")
    #expect(s.config.healthcheck?.test == ["CMD-SHELL", "wget -q -O- http://localhost/"])
    #expect(s.config.onBuild == ["COPY . /src"])
    #expect(s.config.author == "me@example.org")
    #expect(applied[5].user == "web:web")
}

@Test(arguments: [
    ("FROM scratch\nEXPOSE 99999", "Dockerfile:2: invalid port: 99999 in EXPOSE (a port is 0-65535, a range lo-hi)"),
    ("FROM scratch\nEXPOSE 80/icmp", "Dockerfile:2: invalid proto: icmp in EXPOSE 80/icmp"),
    ("FROM scratch\nEXPOSE 1-2000", "Dockerfile:2: EXPOSE names more than 1024 ports"),
    ("FROM scratch\nSTOPSIGNAL SIGNOPE", "Dockerfile:2: invalid signal: SIGNOPE"),
    ("FROM scratch\nENV A=${B:?B_must_be_set}", "Dockerfile:2: failed to process \"${B:?B_must_be_set}\": B: B_must_be_set"),
    ("FROM scratch\nCOPY ${X:?} /", "Dockerfile:2: failed to process \"${X:?}\": X: is not allowed to be unset"),
    ("FROM scratch\nRUN --mount=type=cache,target=/c,uid=$U true", "Dockerfile:2: invalid value  for uid"),
])
func applyErrorsNameTheLine(text: String, description: String) {
    do {
        _ = try dispatch(text)
        Issue.record("applied")
    } catch let error as DockerfileError {
        #expect(error.description == description)
    } catch {
        Issue.record("\(error)")
    }
}

@Test func copyWordsAreExpandedAndHeredocsWhenUnquoted() throws {
    let (_, applied) = try dispatch("FROM scratch\nARG SRC=app DEST=/opt U=1000\nCOPY --chown=$U:$U --chmod=0644 $SRC/*.go ${DEST}/\nCOPY <<a <<\"b\" /x/\n$DEST\na\n$DEST\nb\n")
    guard case .copy(let c) = applied[1].instruction.command, case .copy(let h) = applied[2].instruction.command else {
        Issue.record("COPY"); return
    }
    #expect(c.sources == ["app/*.go"])
    #expect(c.destination == "/opt/")
    #expect(c.chown == "1000:1000")
    #expect(h.inlineSources.map(\.data) == ["/opt\n", "$DEST\n"])
}

@Test func heredocBodyExpansionKeepsQuotes() throws {
    let (_, applied) = try dispatch("FROM scratch\nENV N=x\nCOPY <<EOF /f\n'$N' \"$N\" \\$N\nEOF\n")
    guard case .copy(let c) = applied[1].instruction.command else { Issue.record("COPY"); return }
    #expect(c.inlineSources[0].data == "'x' \"x\" $N\n")
}

@Test func runMountValuesAreExpanded() throws {
    let (_, applied) = try dispatch("FROM scratch\nARG CACHE=/root/.cache ID=go\nRUN --mount=type=cache,id=$ID-mod,target=${CACHE},uid=${UID:-0} make")
    guard case .run(let r) = applied[1].instruction.command else { Issue.record("RUN"); return }
    #expect(r.mounts[0].cacheID == "go-mod")
    #expect(r.mounts[0].target == "/root/.cache")
    #expect(r.mounts[0].uid == 0)
    // The command itself is the shell's to expand.
    #expect(r.command.arguments == ["make"])
}

@Test func runCommandIsNotExpandedByTheFrontend() throws {
    let (_, applied) = try dispatch("FROM scratch\nENV X=1\nRUN echo $X \"${X}\"")
    #expect(applied[1].runCommand?.arguments == ["/bin/sh", "-c", "echo $X \"${X}\""])
    #expect(applied[1].environment.contains("X=1"))
}

@Test func cacheKeyTextChangesWithWhatTheInstructionSees() throws {
    let a = try dispatch("FROM scratch\nARG V=1\nRUN make").1[1].cacheKeyText
    let b = try dispatch("FROM scratch\nARG V=2\nRUN make").1[1].cacheKeyText
    let c = try dispatch("FROM scratch\nARG V=1\nUSER 1\nRUN make").1[2].cacheKeyText
    let d = try dispatch("FROM scratch\nARG V=1\nRUN --network=none make").1[1].cacheKeyText
    let e = try dispatch("FROM scratch\nARG V=1\nRUN make").1[1].cacheKeyText
    #expect(Set([a, b, c, d]).count == 4)
    #expect(a == e)
}

@Test func cacheKeyTextHoldsNoSecretValueAndCannotBeForged() throws {
    let key = try dispatch("FROM scratch\nRUN --mount=type=secret,id=tok,env=T make").1[0].cacheKeyText
    #expect(key.contains("tok"))
    // An ENV value with a newline stays one quoted line.
    let forged = try dispatch("FROM scratch\nENV A=\"x\\nuser=\\\"root\\\"\"\nRUN make").1[1].cacheKeyText
    #expect(forged.split(separator: "\n").filter { $0.hasPrefix("user=") }.count == 1)
}

@Test func onbuildTriggersOfTheBaseAreParsedAndCleared() throws {
    let df = try Dockerfile.parse("FROM scratch\nRUN true")
    let plan = try BuildPlan(df)
    let state = try plan.stageState(for: 0, base: ImageConfig(onBuild: ["COPY . /src", "RUN make -C /src"]))
    #expect(state.triggers.map(\.keyword) == ["COPY", "RUN"])
    #expect(state.config.onBuild.isEmpty)
    #expect(state.triggers[0].line == 1)
    #expect(throws: DockerfileError.self) { try plan.stageState(for: 0, base: ImageConfig(onBuild: ["ONBUILD RUN x"])) }
    do {
        _ = try plan.stageState(for: 0, base: ImageConfig(onBuild: ["RUNN x"]))
        Issue.record("accepted")
    } catch {
        #expect(error.description == "Dockerfile:1: ONBUILD trigger \"RUNN x\" of the base image: unknown instruction \"RUNN\" (did you mean \"RUN\"?)")
    }
}
