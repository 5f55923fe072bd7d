import CAgentSandbox
import AgentSupport
import FoundationEssentials
import Glibc

extension Pod {
    /// Makes the pod's namespaces (and, with `.outbound`, attaches its stack and installs
    /// its fences), or throws the `SandboxError` naming the stage that failed. Nothing is
    /// left behind on failure.
    public static func create(_ configuration: Configuration) async throws -> Pod {
        guard configuration.network == .none || configuration.network == .outbound else {
            throw SandboxError(stage: "pod", detail: "(a job's network is none or outbound, not \(configuration.network.rawValue))")
        }
        if getuid() == 0 && !configuration.allowRoot {
            throw SandboxError(stage: "start", detail: "(refusing to run containers as root: run the agent as an unprivileged user, or pass --allow-root / allowRoot)")
        }
        // Blocking work (id-mapping helpers, the stack's start, the holder's exit) on a thread
        // of its own, which is also the holder's parent thread (PR_SET_PDEATHSIG) until it is
        // reaped: the cooperative pool never blocks.
        return try await withCheckedThrowingContinuation { (cont: CheckedContinuation<Pod, any Error>) in
            do {
                try startDetachedThread {
                    do { cont.resume(returning: try PodHolder(configuration: configuration).run()) }
                    catch { cont.resume(throwing: error) }
                }
            } catch {
                cont.resume(throwing: SandboxError(stage: "thread", errno: (error as? ThreadStartError)?.errno ?? EAGAIN))
            }
        }
    }

    /// Whether something in the pod accepts TCP connections on 127.0.0.1:`port` (a
    /// service's health check): a connect from a short-lived process that joins the pod's
    /// namespaces (no container, no exec), given up after `timeout`.
    public func isListening(port: UInt16, timeout: Duration = .seconds(1)) async -> Bool {
        // Copies of the descriptors, so a concurrent close() cannot hand their numbers to
        // something else while the probe uses them.
        guard let ns = duplicateNamespaces() else { return false }
        let ms = Int32(clamping: max(1, timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000))
        // The probe's thread waits for its child (CLONE_VFORK) up to `timeout`.
        return await withCheckedContinuation { (cont: CheckedContinuation<Bool, Never>) in
            do {
                try startDetachedThread {
                    let r = agent_sandbox_pod_connect(ns.user, ns.net, Int32(port), ms)
                    Glibc.close(ns.user); Glibc.close(ns.net)
                    cont.resume(returning: r == 1)
                }
            } catch {
                Glibc.close(ns.user); Glibc.close(ns.net)
                cont.resume(returning: false)
            }
        }
    }
}

/// The pod's holder: a child cloned into a new user and network namespace that agent-init
/// runs in its `pod_holder` mode. While it waits on its sync pipe the agent opens its
/// `/proc/PID/ns/{user,net}` (it is dumpable until then), maps its ids, attaches the stack;
/// after the sync the holder brings lo up, installs the fences and exits 0.
struct PodHolder {
    var configuration: Pod.Configuration

    /// The holder as a container configuration: only the fields the plan reads matter.
    var container: ContainerConfiguration {
        var c = ContainerConfiguration(command: ["pod"])
        c.network = configuration.network
        c.outbound = configuration.outbound
        c.idMapping = configuration.idMapping
        c.allowRoot = configuration.allowRoot
        c.setupTimeout = configuration.setupTimeout
        c.hostname = "pod"
        return c
    }

    /// `ids`: the plan when the caller has resolved it already.
    func run(ids resolved: IDMapPlan? = nil) throws -> Pod {
        let c = container
        let ids = try resolved ?? IDMapPlan.forCurrentUser(c)
        var parentEnds: [Int32] = [], childEnds: [Int32] = []
        func closeAll(_ fds: inout [Int32]) { for fd in fds where fd > 2 { Glibc.close(fd) }; fds = [] }
        defer { closeAll(&parentEnds); closeAll(&childEnds) }
        let sync = try Launcher.syncPair(); parentEnds.append(sync.write); childEnds.append(sync.read)
        let errp = try Launcher.pipePair(); parentEnds.append(errp.read); childEnds.append(errp.write)
        let status = try Launcher.pipePair(); parentEnds.append(status.read); childEnds.append(status.write)
        let release = try Launcher.pipePair(); parentEnds.append(release.write); childEnds.append(release.read)
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        guard null >= 0 else { throw SandboxError(stage: "open /dev/null", errno: errno) }
        childEnds.append(null)

        let arena = PlanArena()
        arena.setCommand(c, capMask: 0, bpf: nil)
        arena.plan.version = AGENT_SANDBOX_PLAN_VERSION
        arena.plan.clone_flags = Launcher.newUser | Launcher.newNet
        arena.plan.pod_holder = 1
        arena.plan.loopback = 1
        if c.network == .outbound {
            arena.setRoutes(c.outbound.routes(hostAddresses: OutboundNetwork.hostAddresses()))
        }
        arena.plan.sync_fd = sync.read
        arena.plan.error_fd = errp.write
        arena.plan.status_fd = status.write
        arena.plan.release_fd = release.read
        arena.plan.stdio = (null, null, null)
        arena.plan.hostname = UnsafePointer(arena.string(c.hostname))
        let nested = ids.nestedMaps
        arena.plan.nested_uid_map = UnsafePointer(arena.string(nested.uid))
        arena.plan.nested_gid_map = UnsafePointer(arena.string(nested.gid))
        let planFD = try arena.sealedMemfd()
        defer { Glibc.close(planFD) }
        var header = arena.plan
        let initFD = try Launcher.initBinary()

        var pid: Int32 = 0, pidfd: Int32 = -1, used: UInt64 = 0
        let rc = agent_sandbox_spawn(&header, planFD, initFD, &pid, &pidfd, &used)
        closeAll(&childEnds)
        guard rc == 0 else {
            throw SandboxError(stage: "clone", errno: -rc, detail: "(the job's network; are unprivileged user namespaces enabled?)")
        }
        var userFD: Int32 = -1, netFD: Int32 = -1
        var stack: NetworkStack? = nil
        func abandon() {
            stack?.stop()
            if userFD >= 0 { Glibc.close(userFD) }
            if netFD >= 0 { Glibc.close(netFD) }
            _ = agent_sandbox_pidfd_signal(pidfd, SIGKILL)
            var st: Int32 = 0
            _ = agent_sandbox_pidfd_reap(pidfd, &st)
            Glibc.close(pidfd)
        }
        if let early = Launcher.pendingFailure(errp.read) {
            abandon()
            throw ShimFailure.error(stage: early.stage, op: early.op, errno: early.err, ops: [], configuration: c)
        }
        do {
            // Opened while the holder waits (dumpable, ours, once it says so: see
            // Launcher.awaitReady): from now on the namespaces live as long as these
            // descriptors, whatever becomes of the holder.
            try Launcher.awaitReady(sync.write, timeout: c.setupTimeout)
            userFD = agent_sandbox_open_ns(pid, "user")
            guard userFD >= 0 else { throw SandboxError(stage: "pod", errno: -userFD, detail: "/proc/\(pid)/ns/user") }
            netFD = agent_sandbox_open_ns(pid, "net")
            guard netFD >= 0 else { throw SandboxError(stage: "pod", errno: -netFD, detail: "/proc/\(pid)/ns/net") }
            if c.network == .outbound { stack = try NetworkStack.start(c.outbound, childPID: pid) }
            try ids.apply(pid: pid, timeout: c.setupTimeout)
            try stack?.waitUntilReady(timeout: c.setupTimeout)
        } catch {
            abandon(); throw error
        }
        var one: UInt8 = 1
        _ = write(sync.write, &one, 1)
        var record = agent_sandbox_failure()
        let (got, inTime) = Launcher.readFailure(errp.read, into: &record, until: .now + c.setupTimeout)
        guard inTime else {
            abandon()
            throw SandboxError.timedOut(stage: "the job's network set-up", after: c.setupTimeout)
        }
        if got == MemoryLayout<agent_sandbox_failure>.size {
            abandon()
            throw ShimFailure.error(stage: record.stage, op: record.op, errno: record.err, ops: [], configuration: c)
        }
        var st: Int32 = 0
        _ = agent_sandbox_pidfd_reap(pidfd, &st)
        Glibc.close(pidfd)
        guard st == 0 else {
            stack?.stop()
            Glibc.close(userFD); Glibc.close(netFD)
            throw SandboxError(stage: "pod", detail: "(the holder of the job's network exited with status \(st))")
        }
        return Pod(configuration: configuration, ids: ids, userFD: userFD, netFD: netFD, stack: stack)
    }
}
