import CAgentSandbox
import AgentSupport
import FoundationEssentials
import Glibc
import Synchronization

/// The parent's end of one container: descriptors, state shared between the supervisor
/// thread and callers, and the supervisor loop itself.
///
/// One dedicated thread per container does every blocking step (id maps, reading the error
/// pipe, output, the status pipe, the pidfd, timeouts) so Swift's cooperative pool never blocks.
final class ContainerCore: Sendable {
    struct State {
        var result: ContainerResult?
        var waiters: [CheckedContinuation<ContainerResult, Never>] = []
        /// A terminate request not yet acted on (the grace period).
        var terminateGrace: Duration?
        var releaseFD: Int32 = -1
        /// The init was reaped; the pidfd is closed.
        var reaped = false
        var pidfd: Int32 = -1
        var commandExited = false
    }

    let configuration: ContainerConfiguration
    let pid: Int32
    let idMapping: ContainerConfiguration.IDMapping
    let started: ContinuousClock.Instant
    let wakeFD: Int32
    let state: Mutex<State>
    /// Captured output on its way to the consumer, bounded (see `OutputBuffer`).
    let output: OutputBuffer
    /// The outbound network's stack, stopped once the init is reaped.
    let network: NetworkStack?

    init(configuration: ContainerConfiguration, pid: Int32, pidfd: Int32, releaseFD: Int32,
         idMapping: ContainerConfiguration.IDMapping, started: ContinuousClock.Instant, network: NetworkStack? = nil) {
        self.configuration = configuration
        self.network = network
        self.pid = pid
        self.idMapping = idMapping
        self.started = started
        self.wakeFD = agent_sandbox_eventfd()
        var s = State()
        s.pidfd = pidfd
        s.releaseFD = releaseFD
        self.state = Mutex(s)
        let fd = wakeFD
        output = OutputBuffer(capacityBytes: configuration.outputBufferBytes) {
            var one: UInt64 = 1
            _ = write(fd, &one, 8)
        }
    }

    deinit { close(wakeFD) }

    func wake() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    func requestTerminate(grace: Duration) {
        state.withLock { s in s.terminateGrace = min(s.terminateGrace ?? grace, grace) }
        wake()
    }

    /// Signals the init (which forwards catchable signals to the command).
    @discardableResult
    func signalInit(_ sig: Int32) -> Bool {
        state.withLock { s in
            guard !s.reaped, s.pidfd >= 0 else { return false }
            return agent_sandbox_pidfd_signal(s.pidfd, sig) == 0
        }
    }

    func release() {
        state.withLock { s in
            if s.releaseFD >= 0 { close(s.releaseFD); s.releaseFD = -1 }
        }
    }

    private func publish(_ r: ContainerResult) {
        let waiters = state.withLock { s -> [CheckedContinuation<ContainerResult, Never>] in
            guard s.result == nil else { return [] }
            s.result = r
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume(returning: r) }
    }

    /// Bytes per read(2) of an output pipe, and the pipe size asked for.
    static let readSize = 256 << 10
    static let pipeSize = Int32(1 << 20)
    /// `F_SETPIPE_SZ` from linux/fcntl.h (Glibc does not export it without _GNU_SOURCE).
    static let F_SETPIPE_SZ: Int32 = 1031

    /// Reads what the pipe has, and keeps reading while more arrives within a millisecond,
    /// up to `coalesceBytes` or `coalesceNanos`. Programs write in 4-8 KiB pieces; handing
    /// each to the consumer as its own chunk cost a thread wake-up per piece (190,000 for
    /// 1 GiB of `yes`), which made the hand-off, not the work, the bottleneck. Output that
    /// trickles is delayed by at most `coalesceNanos`. Returns the bytes read and the last
    /// read's result (0 at EOF, -1 with errno on an error).
    static func readCoalescing(_ fd: Int32, _ buf: inout [UInt8]) -> (filled: Int, last: Int) {
        var filled = 0
        let start = now()
        while true {
            let r = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress! + filled, $0.count - filled) }
            if r <= 0 { return (filled, r) }
            filled += r
            if filled >= coalesceBytes || now() - start >= coalesceNanos { return (filled, r) }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 1) <= 0 || p.revents & Int16(POLLIN) == 0 { return (filled, r) }
        }
    }

    /// See `readCoalescing`.
    static let coalesceBytes = 128 << 10
    static let coalesceNanos: UInt64 = 5_000_000

    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    static func nanos(_ d: Duration) -> UInt64 {
        let (s, a) = d.components
        if s < 0 { return 0 }
        return UInt64(s) * 1_000_000_000 + UInt64(a / 1_000_000_000)
    }

    static func status(raw: Int32) -> TerminationStatus {
        raw & 0x7f == 0 ? .exited((raw >> 8) & 0xff) : .signaled(raw & 0x7f)
    }

    /// The loop after a successful start: output, status, reaping, timeout and terminate.
    func supervise(stdoutFD: Int32, stderrFD: Int32, statusFD: Int32) {
        var out = stdoutFD, err = stderrFD, statusPipe = statusFD
        var commandStatus: Int32? = nil
        var initStatus: Int32? = nil
        var timedOut = false
        let startNanos = Self.now() - Self.nanos(started.duration(to: .now))
        var deadline: UInt64? = configuration.timeout.map { startNanos + Self.nanos($0) }
        var killAt: UInt64? = nil
        let pidfd = state.withLock { $0.pidfd }
        // Only captured output is read here (an `.inherit` container has no pipes). One
        // reusable read buffer; each chunk is copied out at its exact size, so the queue's
        // byte count is also what it holds.
        var buf = [UInt8](repeating: 0, count: out >= 0 || err >= 0 ? Self.readSize : 0)
        // Larger pipes mean fewer wake-ups per byte; best effort (the per-user pipe budget
        // may refuse it, which is harmless).
        for fd in [out, err] where fd >= 0 { _ = fcntl(fd, Self.F_SETPIPE_SZ, Self.pipeSize) }
        var fds: [pollfd] = []
        var kinds: [Int] = []
        fds.reserveCapacity(5)
        kinds.reserveCapacity(5)

        func sendTerm(grace: Duration) {
            signalInit(SIGTERM)
            let k = Self.now() + Self.nanos(grace)
            killAt = min(killAt ?? k, k)
        }

        while initStatus == nil || out >= 0 || err >= 0 || statusPipe >= 0 {
            fds.removeAll(keepingCapacity: true)
            kinds.removeAll(keepingCapacity: true)
            func add(_ fd: Int32, _ kind: Int) { if fd >= 0 { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)); kinds.append(kind) } }
            // Backpressure: with the queue full the pipes are left alone until the consumer
            // makes room (it writes wakeFD), so the command blocks in write(2).
            if (out >= 0 || err >= 0) && output.reserveRoom() { add(out, 1); add(err, 2) }
            add(statusPipe, 3)
            if initStatus == nil { add(pidfd, 4) }
            add(wakeFD, 5)
            var timeoutMS: Int32 = -1
            let now = Self.now()
            for t in [deadline, killAt].compactMap({ $0 }) {
                let ms = t > now ? Int32(min((t - now) / 1_000_000 + 1, 1_000_000)) : 0
                timeoutMS = timeoutMS < 0 ? ms : min(timeoutMS, ms)
            }
            let n = poll(&fds, nfds_t(fds.count), timeoutMS)
            if n < 0 && errno != EINTR { break }
            for (i, p) in fds.enumerated() where p.revents != 0 {
                switch kinds[i] {
                case 1, 2:
                    let fd = kinds[i] == 1 ? out : err
                    let (filled, r) = Self.readCoalescing(fd, &buf)
                    if filled > 0 {
                        output.push(OutputChunk(stream: kinds[i] == 1 ? .stdout : .stderr, bytes: Array(buf[0..<filled])))
                    }
                    if r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN) {
                        close(fd)
                        if kinds[i] == 1 { out = -1 } else { err = -1 }
                    }
                case 3:
                    var raw: Int32 = 0
                    let r = read(statusPipe, &raw, 4)
                    if r == 4 {
                        commandStatus = raw
                        // The command is done: a kept-alive init must not be killed by a late timeout.
                        deadline = nil
                        killAt = nil
                    }
                    if r == 4 || r == 0 || (r < 0 && errno != EINTR) { close(statusPipe); statusPipe = -1 }
                case 4:
                    var st: Int32 = 0
                    if agent_sandbox_pidfd_reap(pidfd, &st) == 0 { initStatus = st } else { initStatus = 0x7f00 | SIGKILL }
                    state.withLock { s in s.reaped = true; close(s.pidfd); s.pidfd = -1 }
                    // The namespace's last user besides the init: the stack goes with it.
                    network?.stop()
                case 5:
                    var v: UInt64 = 0
                    _ = read(wakeFD, &v, 8)
                    if let g = state.withLock({ s -> Duration? in defer { s.terminateGrace = nil }; return s.terminateGrace }) {
                        sendTerm(grace: g)
                    }
                default: break
                }
            }
            let t = Self.now()
            if let d = deadline, t >= d {
                timedOut = true
                deadline = nil
                sendTerm(grace: configuration.killGracePeriod)
            }
            if let k = killAt, t >= k {
                killAt = nil
                signalInit(SIGKILL)
            }
            if commandStatus != nil || initStatus != nil {
                let raw = commandStatus ?? initStatus!
                if commandStatus == nil && statusPipe >= 0 { continue }  // the status may still be in flight
                // An outbound container's stack is stopped when the init is reaped, which
                // follows the status at once: waiting for it means no stack outlives the
                // result (a kept-alive init waits for its release, so it cannot wait).
                if network != nil && initStatus == nil && !configuration.keepAliveAfterExit { continue }
                publish(ContainerResult(status: Self.status(raw: raw), timedOut: timedOut,
                                        idMapping: idMapping, duration: started.duration(to: .now)))
            }
        }
        if out >= 0 { close(out) }
        if err >= 0 { close(err) }
        if statusPipe >= 0 { close(statusPipe) }
        output.finish()
        network?.stop()
        release()
        publish(ContainerResult(status: Self.status(raw: commandStatus ?? initStatus ?? (0x7f00 | SIGKILL)),
                                timedOut: timedOut, idMapping: idMapping, duration: started.duration(to: .now)))
    }
}
