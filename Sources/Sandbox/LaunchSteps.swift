import CAgentSandbox
import AgentSupport
import FoundationEssentials
import Glibc

/// A container's child between its spawn and its plan: agent-init waits on the sync socket,
/// its id mapping is under way (the helpers may still run), its plan memfd is still empty.
/// Made by `Launcher.spawnChild` and finished by `Launcher.complete`, one after the other
/// on one thread (the init's parent thread), so the state needs no lock.
final class SpawnedChild: @unchecked Sendable {
    /// What the child was spawned for: `complete` takes it only for a configuration that
    /// agrees (a reservation made from `agent exec`'s flags before the policy was read).
    struct Shape: Equatable {
        var stdin: ContainerConfiguration.Input
        var output: ContainerConfiguration.Output
        var network: ContainerConfiguration.Network
        var ids: IDMapPlan
    }

    let shape: Shape
    let pid: Int32
    let pidfd: Int32
    let started: ContinuousClock.Instant
    // The parent's ends (-1 once closed or handed on).
    var sync: Int32, errRead: Int32, statusRead: Int32, releaseWrite: Int32
    var outRead: Int32, errOutRead: Int32
    var planFD: Int32
    var pending: IDMapPlan.Pending?
    var stack: NetworkStack?
    /// The child-side descriptor numbers spawn used (kept in the plan for agent-init's checks).
    let childFDs: (sync: Int32, error: Int32, status: Int32, release: Int32, stdio: (Int32, Int32, Int32))
    let flags: UInt64

    init(shape: Shape, pid: Int32, pidfd: Int32, started: ContinuousClock.Instant, sync: Int32, errRead: Int32,
         statusRead: Int32, releaseWrite: Int32, outRead: Int32, errOutRead: Int32, planFD: Int32,
         childFDs: (sync: Int32, error: Int32, status: Int32, release: Int32, stdio: (Int32, Int32, Int32)), flags: UInt64) {
        self.shape = shape
        self.pid = pid
        self.pidfd = pidfd
        self.started = started
        self.sync = sync
        self.errRead = errRead
        self.statusRead = statusRead
        self.releaseWrite = releaseWrite
        self.outRead = outRead
        self.errOutRead = errOutRead
        self.planFD = planFD
        self.childFDs = childFDs
        self.flags = flags
    }

    /// Kills and reaps the child and the helpers, stops the stack, closes every parent end:
    /// nothing of the start is left.
    func abandon() {
        IDMapPlan.cancel(pending)
        pending = nil
        stack?.stop()
        _ = agent_sandbox_pidfd_signal(pidfd, SIGKILL)
        var st: Int32 = 0
        _ = agent_sandbox_pidfd_reap(pidfd, &st)
        close(pidfd)
        for fd in [sync, errRead, statusRead, releaseWrite, outRead, errOutRead, planFD] where fd > 2 { close(fd) }
        (sync, errRead, statusRead, releaseWrite, outRead, errOutRead, planFD) = (-1, -1, -1, -1, -1, -1, -1)
    }
}

extension Launcher {
    /// What `spawnChild` spawns for this configuration.
    var shape: SpawnedChild.Shape {
        SpawnedChild.Shape(stdin: configuration.stdin, output: configuration.output, network: configuration.network, ids: ids)
    }

    /// Pipes, the clone (the child execs agent-init and waits), and the id mapping started:
    /// everything that does not need the plan. A failure leaves nothing behind.
    func spawnChild() throws -> SpawnedChild {
        let c = configuration
        var toClose: [Int32] = []  // parent-side descriptors to close on failure
        var childEnds: [Int32] = []
        func closeAll(_ fds: [Int32]) { for fd in fds where fd > 2 { close(fd) } }
        let spawned: SpawnedChild
        do {
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
            let planFD = agent_sandbox_plan_memfd_empty()
            guard planFD >= 0 else { throw SandboxError(stage: "plan memfd", errno: -planFD) }
            toClose += [planFD]

            // Only the header's descriptors and flags are read by the spawn; the rest of the
            // plan goes into the memfd later (complete), before the sync byte.
            var header = agent_sandbox_plan()
            header.join_user_fd = -1
            header.join_net_fd = -1
            var flags = Self.newNS | Self.newPID | Self.newIPC | Self.newUTS | Self.newCgroup
            if let pod = c.pod {
                // The pod's user and network namespaces are joined, not made (spawn.c).
                let ns = try pod.namespaces()
                header.join_user_fd = ns.user
                header.join_net_fd = ns.net
            } else {
                flags |= Self.newUser
                if c.network != .host { flags |= Self.newNet }
            }
            header.version = AGENT_SANDBOX_PLAN_VERSION
            header.clone_flags = flags
            header.sync_fd = sync.read
            header.error_fd = errp.write
            header.status_fd = status.write
            header.release_fd = release.read
            header.stdio = (stdio[0], stdio[1], stdio[2])

            let started = ContinuousClock.now
            var pid: Int32 = 0, pidfd: Int32 = -1, used: UInt64 = 0
            let rc = agent_sandbox_spawn(&header, planFD, initFD, &pid, &pidfd, &used)
            closeAll(childEnds); childEnds = []
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
            spawned = SpawnedChild(
                shape: shape, pid: pid, pidfd: pidfd, started: started, sync: sync.write, errRead: errp.read,
                statusRead: status.read, releaseWrite: release.write, outRead: outRead, errOutRead: errRead,
                planFD: planFD,
                childFDs: (sync.read, errp.write, status.write, release.read, (stdio[0], stdio[1], stdio[2])),
                flags: flags)
        } catch {
            closeAll(childEnds)
            closeAll(toClose)
            throw error
        }
        // From here on a failure must kill and reap the init: no process is left behind.
        // The spawn returns once the child has exec'd agent-init or exited: a failure before
        // the exec (descriptors, capabilities, the exec itself) is already on the error pipe.
        if let early = Self.pendingFailure(spawned.errRead) {
            spawned.abandon()
            throw ShimFailure.error(stage: early.stage, op: early.op, errno: early.err, ops: plan.ops, configuration: c)
        }
        if let hook = Self.beforeSyncHooks.withLock({ $0.isEmpty ? nil : $0[c.hostname] }) { hook(spawned.pid) }
        do {
            // The way out starts now, beside the id mapping (see NetworkStack.start).
            if c.pod == nil {
                try Self.awaitReady(spawned.sync, timeout: c.setupTimeout)
                if c.network == .outbound { spawned.stack = try NetworkStack.start(c.outbound, childPID: spawned.pid) }
                spawned.pending = try ids.start(pid: spawned.pid)
            }
        } catch {
            // The child may have failed meanwhile: that failure names the stage.
            let early = Self.pendingFailure(spawned.errRead)
            spawned.abandon()
            if let early { throw ShimFailure.error(stage: early.stage, op: early.op, errno: early.err, ops: plan.ops, configuration: c) }
            throw error
        }
        return spawned
    }
}
