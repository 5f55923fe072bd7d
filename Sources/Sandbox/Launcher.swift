import CAgentSandbox
import AgentSupport
import FoundationEssentials
import Glibc
import Synchronization

/// Starts one container on its supervisor thread: pipes, plan, clone (from this thread, which
/// outlives the init), id maps, the sync byte, then the error pipe, which reads EOF once the
/// command has exec'd or one failure record naming the stage.
struct Launcher: Sendable {
    var configuration: ContainerConfiguration
    var ids: IDMapPlan
    var plan: SetupPlan
    var bpf: [UInt8]?

    /// Unit tests only: called on the supervisor thread between the clone and the id maps
    /// (the child then waits on the sync pipe), with the child's pid, for containers whose
    /// hostname is the key. Empty in the agent.
    static let beforeSyncHooks = Mutex<[String: @Sendable (Int32) -> Void]>([:])

    /// CLONE_NEW* values (linux/sched.h).
    static let newNS: UInt64 = 0x0002_0000, newCgroup: UInt64 = 0x0200_0000, newUTS: UInt64 = 0x0400_0000
    static let newIPC: UInt64 = 0x0800_0000, newUser: UInt64 = 0x1000_0000, newPID: UInt64 = 0x2000_0000
    static let newNet: UInt64 = 0x4000_0000

    /// agent-init: the container's set-up and PID 1, a small static program installed beside
    /// the agent's binary (the folder of /proc/self/exe). Opened once per process and kept: the
    /// child of every container start execs this descriptor (execveat), never a path. A failure
    /// is not kept (a long-running `agent watch` picks up an agent-init installed later).
    private static let initFD = Mutex<Int32>(-1)

    static func initBinary() throws(SandboxError) -> Int32 {
        try initFD.withLock { (fd: inout Int32) throws(SandboxError) -> Int32 in
            if fd < 0 { fd = try openInit().get() }
            return fd
        }
    }

    private static func openInit() -> Result<Int32, SandboxError> {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buf, Int(PATH_MAX))
        guard n > 0 else { return .failure(SandboxError(stage: "agent-init", errno: errno, detail: "(/proc/self/exe)")) }
        let exe = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let dir = exe.lastIndex(of: "/").map { String(exe[..<$0]) } ?? "."
        let path = (dir.isEmpty ? "" : dir) + "/agent-init"
        let fd = agent_sandbox_open_init(path, getuid())
        guard fd >= 0 else {
            let why = fd == -EPERM
                ? "(\(path) must be a regular file owned by root or the agent's user, not writable by group or others)"
                : "(\(path): the agent needs its agent-init beside it)"
            return .failure(SandboxError(stage: "agent-init", errno: -fd, detail: why))
        }
        return .success(fd)
    }

    static func pipePair() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        let rc = agent_sandbox_pipe(&fds)
        guard rc == 0 else { throw SandboxError(stage: "pipe", errno: -rc) }
        return (fds[0], fds[1])
    }

    /// Reads the failure record from the error pipe: EOF (0 bytes: the command exec'd) or one
    /// whole record, unless `deadline` passes first (then `inTime` is false).
    static func readFailure(_ fd: Int32, into record: inout agent_sandbox_failure,
                            until deadline: ContinuousClock.Instant) -> (got: Int, inTime: Bool) {
        let size = MemoryLayout<agent_sandbox_failure>.size
        var got = 0
        return withUnsafeMutableBytes(of: &record) { raw in
            while got < size {
                let left = ContinuousClock.now.duration(to: deadline)
                if left <= .zero { return (got, false) }
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let ms = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
                let ready = poll(&p, 1, ms)
                if ready < 0 && errno == EINTR { continue }
                if ready == 0 { continue }  // the loop head decides whether time is up
                let n = read(fd, raw.baseAddress! + got, size - got)
                if n > 0 { got += n } else if n < 0 && errno == EINTR { continue } else { break }
            }
            return (got, true)
        }
    }

    /// A failure record already on the error pipe (the child failed before or at its exec of
    /// agent-init), without waiting.
    static func pendingFailure(_ fd: Int32) -> agent_sandbox_failure? {
        var early = agent_sandbox_failure()
        var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let size = MemoryLayout<agent_sandbox_failure>.size
        guard poll(&ready, 1, 0) > 0, read(fd, &early, size) == size else { return nil }
        return early
    }

    /// The sync channel: a socket pair, so agent-init can answer on it (`awaitReady`).
    static func syncPair() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        let rc = agent_sandbox_socketpair(&fds)
        guard rc == 0 else { throw SandboxError(stage: "socketpair", errno: -rc) }
        return (fds[0], fds[1])
    }

    /// Waits for agent-init's ready byte on the sync socket (`fd`: the parent's end): it has
    /// made itself dumpable, so its /proc/PID/{setgroups,uid_map,gid_map} are ours to open
    /// (a non-dumpable process's belong to root). The spawn returns while the child's exec
    /// is still under way (the vfork-style release comes first), and under load the exec
    /// sometimes left it non-dumpable: writing setgroups failed with EACCES ("setgroups:
    /// Permission denied", 1-6 % of starts in loops here). EOF (the child is gone) returns
    /// too: its failure record, if any, is on the error pipe, which the caller reads next.
    static func awaitReady(_ fd: Int32, timeout: Duration) throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            // The byte, if there, counts even past the deadline; then time is up.
            let left = ContinuousClock.now.duration(to: deadline)
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ms = left <= .zero ? 0 : Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
            let n = poll(&p, 1, ms)
            if n < 0 && errno == EINTR { continue }
            if n > 0 {
                var b: UInt8 = 0
                if read(fd, &b, 1) < 0 && errno == EINTR { continue }
                return
            }
            if left <= .zero { throw SandboxError.timedOut(stage: "agent-init exec", after: timeout) }
        }
    }

    /// A container whose command has exec'd, and the parent's ends of its pipes for `supervise`.
    struct Started {
        var core: ContainerCore
        var stdoutFD: Int32, stderrFD: Int32, statusFD: Int32

        /// The supervisor loop, on the calling thread (the init's parent thread) until the
        /// container is gone.
        func supervise() { core.supervise(stdoutFD: stdoutFD, stderrFD: stderrFD, statusFD: statusFD) }
    }

    /// On the supervisor thread: starts, hands the container over, then supervises it.
    func run(_ cont: CheckedContinuation<RunningContainer, any Error>) {
        let started: Started
        do {
            started = try launch()
        } catch {
            cont.resume(throwing: error)
            return
        }
        cont.resume(returning: RunningContainer(core: started.core))
        started.supervise()
    }

    /// Everything up to the command's exec, on the calling thread, which becomes the init's
    /// parent thread (PR_SET_PDEATHSIG) and must supervise it (`Started.supervise`). With
    /// `reserved`, a child spawned earlier for this shape (`ContainerReservation`) is taken instead
    /// of spawning one now.
    func launch(reserved: SpawnedChild? = nil) throws -> Started {
        let child: SpawnedChild
        if let reserved, reserved.shape == shape, configuration.pod == nil {
            child = reserved
        } else {
            reserved?.abandon()
            child = try spawnChild()
        }
        return try complete(child)
    }

    /// The plan into the child's memfd (sealed), the id mapping waited for, the sync byte,
    /// then the error pipe: EOF once the command has exec'd, or one failure record.
    func complete(_ child: SpawnedChild) throws -> Started {
        let c = configuration
        let arena = PlanArena()
        // File owners as the init sees them (the container's namespace, see IDMapPlan.outer).
        arena.setOps(plan.ops.map { op in
            var o = op
            if o.kind == .file { (o.uid, o.gid) = ids.containerIDs(uid: o.uid, gid: o.gid) }
            return o
        })
        arena.setCommand(c, capMask: c.capabilities.mask, bpf: bpf)
        if let pod = c.pod, let ns = try? pod.namespaces() {
            arena.plan.join_user_fd = ns.user
            arena.plan.join_net_fd = ns.net
        }
        arena.plan.version = AGENT_SANDBOX_PLAN_VERSION
        arena.plan.clone_flags = child.flags
        arena.plan.sync_fd = child.childFDs.sync
        arena.plan.error_fd = child.childFDs.error
        arena.plan.status_fd = child.childFDs.status
        arena.plan.release_fd = child.childFDs.release
        arena.plan.stdio = child.childFDs.stdio
        if case .directory(let dir) = c.rootfs {
            arena.plan.rootfs_dir = UnsafePointer(arena.string(dir.path))
            arena.plan.rootfs_id = PlanArena.identity(dir.identity)
            arena.plan.rootfs_bind = c.readOnlyRoot && RootBind.possible(ops: plan.ops, root: dir) ? 1 : 0
        } else if case .layers(let layers) = c.rootfs {
            arena.setRootfsLayers(layers)
        } else if case .layersWithUpper(let lower, let upper, let work) = c.rootfs {
            arena.setRootfsLayers(lower, upper: upper, work: work)
        }
        arena.plan.readonly_root = c.readOnlyRoot ? 1 : 0
        arena.plan.hostname = UnsafePointer(arena.string(c.hostname))
        // A pod's loopback and fences are its holder's (PodLauncher.swift).
        arena.plan.loopback = c.network != .host && c.pod == nil ? 1 : 0
        if c.network == .outbound && c.pod == nil {
            arena.setRoutes(c.outbound.routes(hostAddresses: OutboundNetwork.hostAddresses()))
        }
        arena.plan.init_uid = ids.initUID
        arena.plan.init_gid = ids.initGID
        arena.plan.clear_groups = ids.groupsAllowed ? 1 : 0
        arena.plan.keep_alive = c.keepAliveAfterExit ? 1 : 0
        let nested = ids.nestedMaps
        arena.plan.nested_uid_map = UnsafePointer(arena.string(nested.uid))
        arena.plan.nested_gid_map = UnsafePointer(arena.string(nested.gid))
        do {
            try arena.fill(child.planFD)
            close(child.planFD); child.planFD = -1
            try ids.finish(child.pending, timeout: c.setupTimeout)
            child.pending = nil
            // The way out, before the child goes on: agent-init installs its fences over
            // the stack's routes (agent-init/net.c), then builds the root.
            try child.stack?.waitUntilReady(timeout: c.setupTimeout)
        } catch {
            let early = Self.pendingFailure(child.errRead)
            child.abandon()
            if let early { throw ShimFailure.error(stage: early.stage, op: early.op, errno: early.err, ops: plan.ops, configuration: c) }
            throw error
        }
        var one: UInt8 = 1
        _ = write(child.sync, &one, 1)
        close(child.sync); child.sync = -1
        // Built while the child sets up its root, rather than after: nothing in it depends
        // on the outcome, and a failure below just drops it (it owns only its eventfd).
        let core = ContainerCore(configuration: c, pid: child.pid, pidfd: child.pidfd, releaseFD: child.releaseWrite,
                                 idMapping: ids.reported, started: child.started, network: child.stack)

        var record = agent_sandbox_failure()
        let size = MemoryLayout<agent_sandbox_failure>.size
        let (got, inTime) = Self.readFailure(child.errRead, into: &record, until: .now + c.setupTimeout)
        close(child.errRead); child.errRead = -1
        if !inTime {
            child.abandon()
            throw SandboxError.timedOut(stage: "container set-up", after: c.setupTimeout)
        }
        if got == size {
            child.abandon()
            throw ShimFailure.error(stage: record.stage, op: record.op, errno: record.err, ops: plan.ops, configuration: c)
        }
        return Started(core: core, stdoutFD: child.outRead, stderrFD: child.errOutRead, statusFD: child.statusRead)
    }
}
