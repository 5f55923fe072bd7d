import Testing
@testable import Sandbox
import SandboxPolicy

/// Pure logic of the sandbox: the set-up plan, id-mapping choice and `agent exec` parsing.
@Suite struct SetupPlanTests {
    let fakeHost: (String) -> SetupPlan.HostEntry = { path in
        switch path {
        case "/usr", "/etc": return .directory
        case "/bin": return .symlink("usr/bin")
        case "/lib64": return .symlink("usr/lib64")
        default: return .missing
        }
    }

    @Test func hostRootfsBindsUsrAndRecreatesSymlinks() throws {
        let plan = try SetupPlan(configuration: ContainerConfiguration(command: ["true"]), hostEntry: fakeHost)
        let binds = plan.ops.filter { $0.kind == .bind && $0.source?.hasPrefix("/dev/") == false }
        #expect(binds.map(\.target) == ["usr", "etc"])
        #expect(binds.allSatisfy { $0.flags & SetupOp.readOnly != 0 })
        let links = plan.ops.filter { $0.kind == .symlink && !$0.target.hasPrefix("dev/") }
        #expect(links.map(\.target) == ["bin", "lib64"])
        #expect(links.map(\.data) == ["usr/bin", "usr/lib64"])
        #expect(!plan.ops.contains { $0.source == "/home" || $0.target == "home" || $0.target == "root" })
    }

    @Test func kernelFilesystemsAreResolvedWithoutSymlinks() throws {
        let plan = try SetupPlan(configuration: ContainerConfiguration(command: ["true"]), hostEntry: fakeHost)
        for target in ["proc", "dev", "dev/null", "dev/pts", "sys", "proc/kcore", "proc/sys"] {
            let op = try #require(plan.ops.first { $0.target == target }, "no op for \(target)")
            #expect(op.flags & SetupOp.noSymlinks != 0, "\(target)")
        }
    }

    @Test func hostNetworkHasNoSysfs() throws {
        var c = ContainerConfiguration(command: ["true"])
        c.network = .host
        let plan = try SetupPlan(configuration: c, hostEntry: fakeHost)
        #expect(!plan.ops.contains { $0.target == "sys" || $0.target.hasPrefix("sys/") })
    }

    @Test func callerMountsComeLastInOrder() throws {
        var c = ContainerConfiguration(command: ["true"])
        c.mounts = [.tmpfs("/work/./cache/", size: 1 << 20, mode: 0o755), .bind("/nonexistent-src", "/w", readOnly: false)]
        let plan = try SetupPlan(configuration: c, hostEntry: fakeHost)
        let tail = Array(plan.ops.suffix(2))
        #expect(tail[0].target == "work/cache")
        #expect(tail[0].data == "mode=755,size=1048576")
        #expect(tail[1].kind == .bind && tail[1].flags & SetupOp.readOnly == 0)
        #expect(tail[1].label == "mount /w")
    }

    @Test func onlyDeviceBindsKeepDeviceAccess() throws {
        var c = ContainerConfiguration(command: ["true"])
        c.mounts = [.bind("/nonexistent-src", "/w", readOnly: false)]
        let plan = try SetupPlan(configuration: c, hostEntry: fakeHost)
        let binds = plan.ops.filter { $0.kind == .bind }
        let devices = binds.filter { $0.flags & SetupOp.device != 0 }
        #expect(devices.map(\.target) == SetupPlan.devices.map { "dev/" + $0 })
        #expect(devices.allSatisfy { $0.source == "/" + $0.target })
        // Everything else (host /usr, caller binds) is nosuid,nodev in the shim.
        #expect(binds.count == devices.count + 3)
    }

    @Test func agentBinaryUnderHostBindIsMasked() throws {
        let plan = try SetupPlan(configuration: ContainerConfiguration(command: ["true"]),
                                 agentBinary: "/usr/local/bin/agent", hostEntry: fakeHost)
        #expect(plan.ops.last == SetupOp(kind: .mask, flags: SetupOp.noCreate, target: "usr/local/bin/agent"))
    }

    @Test func targetsWithDotDotOrRelativeAreRejected() {
        var c = ContainerConfiguration(command: ["true"])
        c.mounts = [.tmpfs("/a/../../etc")]
        #expect(throws: SandboxError.self) { try SetupPlan(configuration: c, hostEntry: fakeHost) }
        c.mounts = [.tmpfs("relative")]
        #expect(throws: SandboxError.self) { try SetupPlan(configuration: c, hostEntry: fakeHost) }
        c.mounts = [.tmpfs("/")]
        #expect(throws: SandboxError.self) { try SetupPlan(configuration: c, hostEntry: fakeHost) }
    }
}

@Suite struct IDMappingTests {
    let subuid = "alice:100000:65536\n1001:300000:1000\nbob:200000:65536\n"

    @Test func subordinateRangeByNameOrUID() {
        #expect(SubordinateRange.parse(subuid, user: "bob", id: 1002) == SubordinateRange(start: 200000, count: 65536))
        #expect(SubordinateRange.parse(subuid, user: "carol", id: 1001) == SubordinateRange(start: 300000, count: 1000))
        #expect(SubordinateRange.parse(subuid, user: "dave", id: 7) == nil)
        #expect(SubordinateRange.parse("broken\nx:1:\n", user: "x", id: 1) == nil)
    }

    @Test func automaticPrefersHelpersWhenAvailable() throws {
        let p = try IDMapPlan.resolve(requested: .automatic, uid: 0, gid: 0, hostUID: 1000, userName: "alice",
                                      subuid: subuid, subgid: subuid, helpersExist: true)
        #expect(p.reported == .subordinate && p.groupsAllowed)
        let q = try IDMapPlan.resolve(requested: .automatic, uid: 0, gid: 0, hostUID: 1000, userName: "alice",
                                      subuid: subuid, subgid: subuid, helpersExist: false)
        #expect(q.method == .single(insideUID: 0, insideGID: 0, outerUID: 1, outerGID: 1) && !q.groupsAllowed)
    }

    @Test func singleMapsToTheChosenID() throws {
        let p = try IDMapPlan.resolve(requested: .single, uid: 1000, gid: 100, hostUID: 1000, userName: "alice",
                                      subuid: subuid, subgid: subuid, helpersExist: true)
        #expect(p.method == .single(insideUID: 1000, insideGID: 100, outerUID: 1000, outerGID: 100))
        #expect(p.initUID == 1000 && p.initGID == 100)
        // Inside 0 is the container's 1: its namespace maps no id 0 (see IDMapPlan.outer).
        let z = try IDMapPlan.resolve(requested: .single, uid: 0, gid: 0, hostUID: 1000, userName: "alice",
                                      subuid: subuid, subgid: subuid, helpersExist: true)
        #expect(z.initUID == 1 && z.initGID == 1 && z.nestedMaps.uid == "0 1 1\n")
    }

    @Test func subordinateWithoutRangeIsAnError() {
        #expect(throws: SandboxError.self) {
            try IDMapPlan.resolve(requested: .subordinate, uid: 0, gid: 0, hostUID: 1000, userName: "nobody-here",
                                  subuid: subuid, subgid: subuid, helpersExist: true)
        }
    }

    @Test func nestedMapsRepeatTheContainersExtents() throws {
        // One line per extent of the container's map (the kernel requires each nested extent
        // to fall within one parent extent), the same ids 1:1.
        let h = try IDMapPlan.resolve(requested: .subordinate, uid: 0, gid: 0, hostUID: 1000, userName: "alice",
                                      subuid: subuid, subgid: subuid, helpersExist: true)
        guard case .helpers(let u, _) = h.method else { Issue.record("\(h)"); return }
        #expect(h.nestedMaps.uid == "0 1 1\n1 2 \(u.count)\n")
        let s = try IDMapPlan.resolve(requested: .single, uid: 1000, gid: 100, hostUID: 1000, userName: "alice",
                                      subuid: subuid, subgid: subuid, helpersExist: true)
        #expect(s.nestedMaps.uid == "1000 1000 1\n" && s.nestedMaps.gid == "100 100 1\n")
        let r = try IDMapPlan.resolve(requested: .single, uid: 0, gid: 0, hostUID: 0, userName: "root",
                                      subuid: nil, subgid: nil, helpersExist: false)
        #expect(r.nestedMaps.uid == "0 1 65536\n")
    }

    @Test func rootNeverMapsToHostRoot() throws {
        let p = try IDMapPlan.resolve(requested: .single, uid: 0, gid: 0, hostUID: 0, userName: "root",
                                      subuid: subuid, subgid: subuid, helpersExist: true)
        guard case .rootRange(let u, let g) = p.method else { Issue.record("\(p)"); return }
        #expect(u.start != 0 && g.start != 0)
    }
}

@Suite struct ExecParsingTests {
    @Test func bindSpecs() throws {
        #expect(try ExecParsing.bind("/a:/b") == .bind("/a", "/b", readOnly: true))
        #expect(try ExecParsing.bind("/a:/b:rw") == .bind("/a", "/b", readOnly: false))
        #expect(throws: ExecParsing.InvalidValue.self) { try ExecParsing.bind("/a") }
        #expect(throws: ExecParsing.InvalidValue.self) { try ExecParsing.bind("/a:/b:xx") }
        #expect(throws: ExecParsing.InvalidValue.self) { try ExecParsing.bind("/a:b") }
    }

    @Test func tmpfsSpecs() throws {
        #expect(try ExecParsing.tmpfs("/t") == .tmpfs("/t"))
        #expect(try ExecParsing.tmpfs("/t:size=64m,mode=700") == .tmpfs("/t", size: 64 << 20, mode: 0o700))
        #expect(throws: ExecParsing.InvalidValue.self) { try ExecParsing.tmpfs("/t:size=lots") }
        #expect(throws: ExecParsing.InvalidValue.self) { try ExecParsing.tmpfs("/t:mode=999") }
    }

    @Test func durationsAndUsers() throws {
        #expect(try ExecParsing.duration("10s") == .seconds(10))
        #expect(try ExecParsing.duration("500ms") == .milliseconds(500))
        #expect(try ExecParsing.duration("2m") == .seconds(120))
        #expect(throws: ExecParsing.InvalidValue.self) { try ExecParsing.duration("soon") }
        #expect(try ExecParsing.user("1000") == (1000, 1000))
        #expect(try ExecParsing.user("1000:50") == (1000, 50))
        #expect(throws: ExecParsing.InvalidValue.self) { try ExecParsing.user("bob") }
    }

    @Test func mountFlagsKeepCommandLineOrder() {
        let args = ["exec", "--tmpfs", "/w", "--rootfs", "host", "--bind=/a:/w/a", "--tmpfs=/t", "--", "--bind", "x"]
        let got = ExecParsing.orderedMountFlags(args)
        #expect(got.map(\.flag) == ["--tmpfs", "--bind", "--tmpfs"])
        #expect(got.map(\.value) == ["/w", "/a:/w/a", "/t"])
    }

    @Test func capDropAllWithoutNames() throws {
        let gate = ExecPolicyGate(policy: SandboxLimits(), source: "built-in")
        #expect(try gate.capabilities(drop: ["ALL"], add: []) == .empty)
        #expect(try gate.capabilities(drop: [], add: []) == .dockerDefault)
    }
}
