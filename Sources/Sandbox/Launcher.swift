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
    /// parent thread (PR_SET_PDEATHSIG) and must supervise it (`Started.supervise`).
    func launch() throws -> Started {
        var toClose: [Int32] = []  // parent-side descriptors to close on failure
        var childEnds: [Int32] = []
        func closeAll(_ fds: [Int32]) { for fd in fds where fd > 2 { close(fd) } }
        do {
            let c = configuration
            let sync = try Self.syncPair(); toClose += [sync.write]; childEnds += [sync.read]
            let errp = try Self.pipePair(); toClose += [errp.read]; childEnds += [errp.write]
            let status = try Self.pipePair(); toClose += [status.read]; childEnds += [status.write]
            let release = try Self.pipePair(); toClose += [release.write]; childEnds += [release.read]
            var stdio: [Int32] = [0, 1, 2]
            if c.stdin == .null {
                let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { throw SandboxError(stage: "open /dev/null", errno: errno) }
                stdio[0] = fd; childEnds.append(fd)
            }
            var outRead: Int32 = -1, errRead: Int32 = -1
            if c.output == .pipe {
                let o = try Self.pipePair(), e = try Self.pipePair()
                outRead = o.read; errRead = e.read
                toClose += [o.read, e.read]; childEnds += [o.write, e.write]
                stdio[1] = o.write; stdio[2] = e.write
            }

            let initFD = try Self.initBinary()
            let arena = PlanArena()
            // File owners as the init sees them (the container's namespace, see IDMapPlan.outer).
            arena.setOps(plan.ops.map { op in
                var o = op
                if o.kind == .file { (o.uid, o.gid) = ids.containerIDs(uid: o.uid, gid: o.gid) }
                return o
            })
            arena.setCommand(c, capMask: c.capabilities.mask, bpf: bpf)
            var flags = Self.newNS | Self.newPID | Self.newIPC | Self.newUTS | Self.newCgroup
            if let pod = c.pod {
                // The pod's user and network namespaces are joined, not made (spawn.c).
                let ns = try pod.namespaces()
                arena.plan.join_user_fd = ns.user
                arena.plan.join_net_fd = ns.net
            } else {
                flags |= Self.newUser
                if c.network != .host { flags |= Self.newNet }
            }
            arena.plan.version = AGENT_SANDBOX_PLAN_VERSION
            arena.plan.clone_flags = flags
            arena.plan.sync_fd = sync.read
            arena.plan.error_fd = errp.write
            arena.plan.status_fd = status.write
            arena.plan.release_fd = release.read
            arena.plan.stdio = (stdio[0], stdio[1], stdio[2])
            if case .directory(let dir) = c.rootfs {
                arena.plan.rootfs_dir = UnsafePointer(arena.string(dir.path))
                arena.plan.rootfs_id = PlanArena.identity(dir.identity)
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
            let planFD = try arena.sealedMemfd(); toClose += [planFD]
            var header = arena.plan

            let started = ContinuousClock.now
            var pid: Int32 = 0, pidfd: Int32 = -1, used: UInt64 = 0
            let rc = agent_sandbox_spawn(&header, planFD, initFD, &pid, &pidfd, &used)
            closeAll(childEnds); childEnds = []
            close(planFD); toClose.removeAll { $0 == planFD }
            guard rc == 0 else {
                // A pod member's intermediate child reports its own failure (joining, unsharing)
                // on the error pipe.
                if c.pod != nil, let f = Self.pendingFailure(errp.read) {
                    throw ShimFailure.error(stage: f.stage, op: f.op, errno: f.err, ops: plan.ops, configuration: c)
                }
                var detail: String? = nil
                if rc == -EPERM || rc == -ENOSPC || rc == -EINVAL {
                    detail = "(are unprivileged user namespaces enabled? see /proc/sys/user/max_user_namespaces)"
                }
                throw SandboxError(stage: "clone", errno: -rc, detail: detail)
            }
            // From here on a failure must kill and reap the init: no process is left behind.
            var stack: NetworkStack? = nil
            func abandon() {
                stack?.stop()
                _ = agent_sandbox_pidfd_signal(pidfd, SIGKILL)
                var st: Int32 = 0
                _ = agent_sandbox_pidfd_reap(pidfd, &st)
                close(pidfd)
            }
            // The spawn returns once the child has exec'd agent-init or exited: a failure before
            // the exec (descriptors, capabilities, the exec itself) is already on the error pipe.
            if let early = Self.pendingFailure(errp.read) {
                abandon()
                throw ShimFailure.error(stage: early.stage, op: early.op, errno: early.err, ops: plan.ops, configuration: c)
            }
            if let hook = Self.beforeSyncHooks.withLock({ $0.isEmpty ? nil : $0[c.hostname] }) { hook(pid) }
            do {
                // The way out starts now, beside the id mapping (see NetworkStack.start).
                if c.pod == nil {
                    try Self.awaitReady(sync.write, timeout: c.setupTimeout)
                    if c.network == .outbound { stack = try NetworkStack.start(c.outbound, childPID: pid) }
                    try ids.apply(pid: pid, timeout: c.setupTimeout)
                }
            } catch {
                abandon(); throw error
            }
            // The way out, before the child goes on: agent-init installs its fences over
            // the stack's routes (agent-init/net.c), then builds the root.
            if stack != nil {
                do {
                    try stack?.waitUntilReady(timeout: c.setupTimeout)
                } catch {
                    abandon(); throw error
                }
            }
            var one: UInt8 = 1
            _ = write(sync.write, &one, 1)
            close(sync.write); toClose.removeAll { $0 == sync.write }
            // Built while the child sets up its root, rather than after: nothing in it depends
            // on the outcome, and a failure below just drops it (it owns only its eventfd).
            let core = ContainerCore(configuration: c, pid: pid, pidfd: pidfd, releaseFD: release.write,
                                     idMapping: ids.reported, started: started, network: stack)

            var record = agent_sandbox_failure()
            let size = MemoryLayout<agent_sandbox_failure>.size
            let (got, inTime) = Self.readFailure(errp.read, into: &record, until: .now + c.setupTimeout)
            close(errp.read); toClose.removeAll { $0 == errp.read }
            if !inTime {
                abandon()
                throw SandboxError.timedOut(stage: "container set-up", after: c.setupTimeout)
            }
            if got == size {
                abandon()
                throw ShimFailure.error(stage: record.stage, op: record.op, errno: record.err, ops: plan.ops, configuration: c)
            }
            return Started(core: core, stdoutFD: outRead, stderrFD: errRead, statusFD: status.read)
        } catch {
            closeAll(childEnds)
            closeAll(toClose)
            throw error
        }
    }
}
