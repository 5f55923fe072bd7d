import Testing
@testable import Dockerfile

func mounts(_ flags: String) throws -> [RunMount] {
    try run("RUN \(flags) true").mounts
}

func mountError(_ flags: String) -> String? {
    do {
        _ = try Dockerfile.parse("FROM scratch\nRUN \(flags) true")
        return nil
    } catch {
        return error.description
    }
}

@Test func cacheMountOptions() throws {
    let m = try #require(mounts("--mount=type=cache,id=go-mod,target=/root/go,sharing=locked,mode=0700,uid=1000,gid=1000,from=base,source=/c").first)
    #expect(m.kind == .cache)
    #expect(m.cacheID == "go-mod")
    #expect(m.target == "/root/go")
    #expect(m.sharing == .locked)
    #expect(m.mode == 0o700)
    #expect(m.uid == 1000 && m.gid == 1000)
    #expect(m.from == "base" && m.source == "/c")
    #expect(!m.readOnly)
}

@Test func cacheIDDefaultsToTarget() throws {
    let m = try #require(mounts("--mount=type=cache,dst=/tmp/cache").first)
    #expect(m.cacheID == "/tmp/cache")
    #expect(m.sharing == nil)
}

@Test func secretMountOptions() throws {
    let ms = try mounts("--mount=type=secret,id=mysecret --mount=type=secret,id=tok,env=TOKEN,required --mount=type=secret,target=/run/x/key,mode=0440")
    #expect(ms[0].secretID == "mysecret")
    #expect(ms[0].effectiveTarget == "/run/secrets/mysecret")
    #expect(ms[0].readOnly)
    #expect(ms[1].env == "TOKEN" && ms[1].required)
    #expect(ms[1].effectiveTarget == nil)
    #expect(ms[2].secretID == "key")
    #expect(ms[2].mode == 0o440)
}

@Test func bindAndTmpfsMounts() throws {
    let ms = try mounts("--mount=target=/src --mount=type=bind,from=build,source=/out,target=/in,rw --mount=type=tmpfs,target=/t,size=64m")
    #expect(ms[0].kind == .bind && ms[0].readOnly)
    #expect(ms[1].from == "build" && ms[1].source == "/out" && !ms[1].readOnly)
    #expect(ms[2].kind == .tmpfs && ms[2].sizeLimit == 64 << 20 && !ms[2].readOnly)
}

@Test func readonlyTakesBooleans() throws {
    let ms = try mounts("--mount=type=cache,target=/a,ro=true --mount=type=cache,target=/b,readonly=false --mount=type=bind,target=/c,readwrite=1")
    #expect(ms.map(\.readOnly) == [true, false, false])
}

@Test func sshIsParsedAndRefusedByThePlan() throws {
    let df = try Dockerfile.parse("FROM scratch\nRUN --mount=type=ssh,required git clone x")
    guard case .run(let r) = df.stages[0].instructions[0].command else { Issue.record("RUN"); return }
    #expect(r.mounts[0].kind == .ssh && r.mounts[0].required)
    do {
        _ = try BuildPlan(df)
        Issue.record("planned")
    } catch {
        #expect(error.description == "Dockerfile:2: RUN --mount=type=ssh is not supported: agent build forwards no SSH agent")
        #expect(error.code == .unsupported)
    }
}

@Test(arguments: [
    ("--mount=type=foo,target=/a", "unsupported mount type \"foo\""),
    ("--mount=type=cahce,target=/a", "unsupported mount type \"cahce\" (did you mean cache?)"),
    ("--mount=typ=cache,target=/a", "unexpected key 'typ' in 'typ=cache' (did you mean type?)"),
    ("--mount=type=cache,target=/a,sharing=open", "unsupported sharing value \"open\""),
    ("--mount=type=cache,target=/a,mode=999", "invalid value 999 for mode"),
    ("--mount=type=cache,target=/a,uid=me", "invalid value me for uid"),
    ("--mount=type=cache,target=/a,size=1m", "unexpected key 'size' for mount type 'cache'"),
    ("--mount=type=cache,target=/a,required", "unexpected key 'required' for mount type 'cache'"),
    ("--mount=type=tmpfs,target=/a,mode=0700", "mode not allowed for \"tmpfs\" type mounts"),
    ("--mount=type=bind,target=/a,uid=1", "uid not allowed for \"bind\" type mounts"),
    ("--mount=type=secret", "invalid secret mount. one of source, target required"),
    ("--mount=type=secret,id=a,from=b", "secret mount should not have a from"),
    ("--mount=type=secret,id=a,sharing=shared", "secret mount should not define sharing"),
    ("--mount=type=bind,target=/a,sharing=shared", "invalid cache sharing set for bind mount"),
    ("--mount=type=cache", "mount type=cache needs a target (target=, dst= or destination=)"),
    ("--mount=type=cache,target=/a,bogus", "invalid field 'bogus' must be a key=value pair"),
    ("--mount=type=cache,target=/a,ro=maybe", "invalid value for ro: maybe"),
    ("--mount=type=tmpfs,target=/a,size=lots", "invalid value for size: lots"),
    ("--mount=type=bind,target=/a,from=$STAGE_NAME", "'from' doesn't support variable expansion, define alias stage instead"),
    ("--mount", "missing a value on flag: --mount"),
])
func mountErrorsNameTheOption(flags: String, message: String) {
    #expect(mountError(flags) == "Dockerfile:2: " + message)
}
