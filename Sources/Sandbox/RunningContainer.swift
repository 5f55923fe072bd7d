import CAgentSandbox
import AgentSupport
import FoundationEssentials
import Glibc
import SandboxPolicy

/// A started container. Obtain one with `RunningContainer.start(_:)`.
///
/// The container's init (PID 1 inside) is cloned by a per-container supervisor thread,
/// which also streams output, reaps the init and enforces timeouts.
public final class RunningContainer: Sendable {
    let core: ContainerCore

    init(core: ContainerCore) { self.core = core }

    deinit { core.release() }

    /// Clones the container, sets it up and execs the command. Returns once the command
    /// is running (the shim's close-on-exec error pipe reached EOF), or throws the
    /// `SandboxError` naming the stage that failed.
    public static func start(_ configuration: ContainerConfiguration) async throws -> RunningContainer {
        try await start(configuration, hostNetworkAllowed: { true })
    }

    /// As `start(_:)`, with the policy's say on `network: .host` (the job runner passes
    /// the agent policy's answer; `agent exec` allows it).
    public static func start(
        _ configuration: ContainerConfiguration, hostNetworkAllowed: @Sendable () -> Bool
    ) async throws -> RunningContainer {
        try await start(configuration, hostNetworkAllowed: hostNetworkAllowed, bpfOverride: nil)
    }

    /// `bpfOverride` lets unit tests install a hand-written filter independent of the policy code.
    static func start(
        _ configuration: ContainerConfiguration, hostNetworkAllowed: @Sendable () -> Bool, bpfOverride: [UInt8]?
    ) async throws -> RunningContainer {
        let c = configuration
        let launcher = try prepare(c, hostNetworkAllowed: hostNetworkAllowed, bpfOverride: bpfOverride)
        return try await withCheckedThrowingContinuation { cont in
            // The supervisor thread: it clones the init (its parent thread for
            // PR_SET_PDEATHSIG) and reaps it before ending.
            do {
                try startDetachedThread { launcher.run(cont) }
            } catch {
                cont.resume(throwing: SandboxError(stage: "thread", errno: (error as? ThreadStartError)?.errno ?? EAGAIN))
            }
        }
    }

    /// Starts the container and supervises it on the calling thread, with no other thread
    /// and no task, and returns its result once it is gone: for a one-shot caller with
    /// nothing else to do meanwhile (`agent exec`), whose start then takes no thread
    /// start-up and no hand-off between threads. `onStart` runs once the command has exec'd.
    /// The calling thread is the init's parent thread (`PR_SET_PDEATHSIG`): the container
    /// dies if it ends, so it must be a thread that lives as long as the caller needs the
    /// container (a process's main thread). Output must be `.inherit` (nothing reads pipes
    /// here but the supervisor loop itself, which has no consumer to hand them to).
    public static func runOnThisThread(
        _ configuration: ContainerConfiguration, hostNetworkAllowed: @Sendable () -> Bool,
        reservation: ContainerReservation? = nil, onStart: (RunningContainer) -> Void
    ) throws -> ContainerResult {
        guard configuration.output == .inherit else {
            reservation?.cancel()
            throw SandboxError(stage: "start", detail: "(runOnThisThread needs output .inherit)")
        }
        let launcher: Launcher
        do {
            launcher = try prepare(configuration, hostNetworkAllowed: hostNetworkAllowed, bpfOverride: nil)
        } catch {
            reservation?.cancel()
            throw error
        }
        let started = try launcher.launch(reserved: reservation?.take())
        let container = RunningContainer(core: started.core)
        onStart(container)
        started.supervise()
        // supervise() publishes the result before it returns.
        return started.core.state.withLock { $0.result }!
    }

    /// The checks and the parent-side work before any thread or clone: refusals, the
    /// seccomp program, the id mapping and the set-up plan.
    static func prepare(
        _ configuration: ContainerConfiguration, hostNetworkAllowed: () -> Bool, bpfOverride: [UInt8]?
    ) throws -> Launcher {
        let c = configuration
        if getuid() == 0 && !c.allowRoot {
            throw SandboxError(stage: "start", detail: "(refusing to run containers as root: run the agent as an unprivileged user, or pass --allow-root / allowRoot)")
        }
        if c.network == .host && !hostNetworkAllowed() {
            throw SandboxError(stage: "network", detail: "(host network is not allowed by the policy)")
        }
        if let pod = c.pod {
            guard c.network == pod.configuration.network else {
                throw SandboxError(stage: "network", detail: "(a container in the job's network must use its mode, \(pod.configuration.network.rawValue), not \(c.network.rawValue))")
            }
            _ = try pod.namespaces()
        }
        for alias in c.hostAliases where !Self.isHostName(alias) {
            throw SandboxError(stage: "/etc/hosts", detail: "(\"\(alias)\" is not a host name: letters, digits, '-' and '.', at most 253 bytes)")
        }
        guard !c.command.isEmpty else { throw SandboxError(stage: "exec", detail: "(empty command)") }
        guard c.workingDirectory.hasPrefix("/") else {
            throw SandboxError(stage: "chdir", detail: "\(c.workingDirectory) (the working directory must be absolute)")
        }
        let bpf: [UInt8]?
        if let override = bpfOverride {
            bpf = override
        } else {
            do {
                bpf = try c.seccomp.compile(capabilities: c.capabilities, cacheDirectory: c.seccompCacheDirectory)
            } catch {
                throw SandboxError(stage: "seccomp profile", detail: "(\(error))")
            }
        }
        let ids = try c.pod.map { $0.ids.joining(uid: c.uid, gid: c.gid) } ?? IDMapPlan.forCurrentUser(c)
        let plan = try SetupPlan(configuration: c, agentBinary: Self.agentBinaryPath())
        return Launcher(configuration: c, ids: ids, plan: plan, bpf: bpf)
    }

    /// A name /etc/hosts may carry: DNS characters only (no space, newline or `#` to add
    /// lines or comments), not empty, at most 253 bytes.
    static func isHostName(_ s: String) -> Bool {
        let u = Array(s.utf8)
        return !u.isEmpty && u.count <= 253 && u.first != UInt8(ascii: "-") && u.first != UInt8(ascii: ".")
            && u.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7a) || $0 == 0x2d || $0 == 0x2e }
    }

    static func agentBinaryPath() -> String? {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The host pid of the container's init.
    public var pid: Int32 { core.pid }

    /// The user-mode stack of an outbound container (`slirp4netns`), nil otherwise.
    public var networkStack: String? { core.network?.name ?? core.configuration.pod?.networkStack }

    /// How ids were mapped for this container (`single` or `subordinate`).
    public var idMapping: ContainerConfiguration.IDMapping { core.idMapping }

    /// Captured stdout/stderr chunks in arrival order (empty when output is `.inherit`).
    /// Finishes when both pipes reach EOF.
    ///
    /// Read only as fast as it is consumed: at most `outputBufferBytes` wait here, then the
    /// pipes fill and the command blocks in write(2). A caller with `.pipe` output must read
    /// it (or call `discard()`), or the command stalls once it has printed that much.
    public var output: ContainerOutput { ContainerOutput(buffer: core.output) }

    /// Waits for the container to exit; enforces the configured timeout.
    /// Cancelling the waiting task terminates the container (SIGTERM, grace, SIGKILL).
    public func wait() async -> ContainerResult {
        let core = self.core
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (cont: CheckedContinuation<ContainerResult, Never>) in
                let done = core.state.withLock { s -> ContainerResult? in
                    if let r = s.result { return r }
                    s.waiters.append(cont)
                    return nil
                }
                if let done { cont.resume(returning: done) }
            }
        } onCancel: {
            core.requestTerminate(grace: core.configuration.killGracePeriod)
        }
    }

    /// SIGTERM to the command (through the init), then SIGKILL to the whole container after `grace`.
    public func terminate(grace: Duration) { core.requestTerminate(grace: grace) }

    /// Sends `signal` to the command through the init (SIGKILL kills the whole container).
    public func signal(_ signal: Int32) { core.signalInit(signal) }

    /// With `keepAliveAfterExit`: a directory descriptor of the container's `/` (via the init's
    /// `/proc/PID/root`), valid until `release()`. Open paths under it with `openat2` and
    /// `RESOLVE_IN_ROOT` so a symlink planted by the job cannot lead out of the container.
    /// The caller closes the descriptor.
    public func openRoot() throws -> Int32 {
        guard core.configuration.keepAliveAfterExit else {
            throw SandboxError(stage: "open root", detail: "(the container was not started with keepAliveAfterExit)")
        }
        return try core.state.withLock { s in
            guard !s.reaped, s.releaseFD >= 0 else {
                throw SandboxError(stage: "open root", detail: "(the container was released or is gone)")
            }
            // The init makes itself dumpable again only after every container process is
            // gone, so /proc/PID/root is reachable for us and for nobody inside.
            let fd = agent_sandbox_open_path_dir("/proc/\(core.pid)/root")
            guard fd >= 0 else { throw SandboxError(stage: "open root", errno: -fd, detail: "/proc/\(core.pid)/root") }
            return fd
        }
    }

    /// With `keepAliveAfterExit`: lets the init exit and the container's mounts go away.
    public func release() { core.release() }
}
