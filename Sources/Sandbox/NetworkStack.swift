import CAgentSandbox
import AgentSupport
import FoundationEssentials
import Glibc
import Synchronization

/// Why the outbound network cannot be had on this host: the message names the device or
/// program and the fix. Checked before anything starts (`NetworkStack.preflight`).
public struct NetworkUnavailable: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// The user-mode stack of one outbound container: slirp4netns, a child of the agent,
/// attached from outside to the container's user and network namespaces while the init
/// waits on its sync pipe, so the namespace has its way out before anything of the job runs.
///
/// It lives exactly as long as the container: stopped once the init is reaped (its tap
/// descriptor is what keeps the namespace alive), and it never survives the agent: it is
/// given the read end of a pipe (`--exit-fd`) whose only write end the agent holds, so the
/// agent's death, however it happens, closes it and slirp4netns exits.
final class NetworkStack: Sendable {
    let pid: pid_t
    let name: String
    private let fds: Mutex<(exit: Int32, stderr: Int32)>
    /// Its `--ready-fd`, until `waitUntilReady` read it.
    private let readyFD: Mutex<Int32>

    private init(pid: pid_t, name: String, exitFD: Int32, stderrFD: Int32, readyFD: Int32) {
        self.pid = pid
        self.name = name
        self.fds = Mutex((exitFD, stderrFD))
        self.readyFD = Mutex(readyFD)
    }

    /// Where the stack's program is looked for (`AGENT_SLIRP4NETNS` replaces it).
    static var slirp4netnsPath: String? {
        if let v = getenv("AGENT_SLIRP4NETNS"), v.pointee != 0 { return String(cString: v) }
        return ["/usr/bin/slirp4netns", "/usr/local/bin/slirp4netns", "/bin/slirp4netns"].first { access($0, X_OK) == 0 }
    }

    static let tunDevice = "/dev/net/tun"

    /// Whether `stack` can run for this user: its program exists and `/dev/net/tun` opens
    /// read-write (slirp4netns opens it inside the container's namespaces as the agent's
    /// user). Returns the program's path.
    static func preflight(_ stack: OutboundNetwork.Stack) throws(NetworkUnavailable) -> String {
        guard let path = slirp4netnsPath else {
            throw NetworkUnavailable(message: "slirp4netns is not installed (the outbound network needs it: apt-get install slirp4netns)")
        }
        let fd = open(tunDevice, O_RDWR | O_CLOEXEC)
        if fd >= 0 { close(fd); return path }
        let e = errno
        var st = stat()
        if stat(tunDevice, &st) != 0 {
            throw NetworkUnavailable(message: "\(tunDevice) does not exist (the outbound network needs the tun device: modprobe tun)")
        }
        if e == EACCES || e == EPERM {
            let mode = String(st.st_mode & 0o777, radix: 8)
            let padded = String(repeating: "0", count: max(0, 4 - mode.count)) + mode
            throw NetworkUnavailable(message: "\(tunDevice) is not readable and writable by the agent user (mode \(padded)); make it 0666, as Debian's default is")
        }
        throw NetworkUnavailable(message: "\(tunDevice) cannot be opened: \(String(cString: strerror(e)))")
    }


    /// Starts the stack for the child `pid` (waiting on its sync pipe), without waiting for it:
    /// it may start while the id maps are being written (joining a user namespace needs no
    /// map: its owner holds every capability in it), so its ~15 ms of start-up overlap the
    /// id-mapping helpers. Call `waitUntilReady` before the child goes on.
    static func start(_ o: OutboundNetwork, childPID pid: Int32) throws -> NetworkStack {
        let path: String
        do { path = try preflight(o.stack) } catch { throw SandboxError(stage: "network", detail: "(\(error.message))") }
        var ready: [Int32] = [-1, -1], exit: [Int32] = [-1, -1], err: [Int32] = [-1, -1]
        for i in 0..<3 {
            var fds: [Int32] = [-1, -1]
            let rc = agent_sandbox_pipe(&fds)
            guard rc == 0 else {
                for fd in ready + exit + err where fd >= 0 { close(fd) }
                throw SandboxError(stage: "pipe", errno: -rc)
            }
            if i == 0 { ready = fds } else if i == 1 { exit = fds } else { err = fds }
        }
        // The stack's stderr never blocks it: what does not fit is dropped (it writes
        // only warnings, read once if it fails to start).
        _ = fcntl(err[1], F_SETFL, fcntl(err[1], F_GETFL) | O_NONBLOCK)
        var args = ["--configure", "--mtu=\(o.mtu)", "--ready-fd=3", "--exit-fd=4",
                    "--userns-path=/proc/\(pid)/ns/user", "--netns-type=path"]
        // An allowed host port needs the gateway to reach the host's loopback at all; the
        // routes agent-init installs then open exactly those ports (agent-init/net.c).
        if o.allowedHostPorts.isEmpty { args.append("--disable-host-loopback") }
        args += ["/proc/\(pid)/ns/net", "tap0"]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, err[1], 2)
        posix_spawn_file_actions_adddup2(&actions, ready[1], 3)
        posix_spawn_file_actions_adddup2(&actions, exit[0], 4)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        // Its own process group: a terminal's ^C reaches the agent, which stops it in order.
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK))
        posix_spawnattr_setpgroup(&attr, 0)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attr, &none)
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + args).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        let envp: [UnsafeMutablePointer<CChar>?] = [strdup("PATH=/usr/bin:/bin"), nil]
        defer { for e in envp { free(e) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, path, &actions, &attr, argv, envp)
        close(ready[1]); close(exit[0]); close(err[1])
        guard rc == 0 else {
            close(ready[0]); close(exit[1]); close(err[0])
            throw SandboxError(stage: "slirp4netns", errno: rc, detail: path)
        }
        return NetworkStack(pid: child, name: "slirp4netns", exitFD: exit[1], stderrFD: err[0], readyFD: ready[0])
    }

    /// Waits for the ready byte within `timeout`; on failure the stack is stopped.
    func waitUntilReady(timeout: Duration) throws {
        let fd = readyFD.withLock { f -> Int32 in defer { f = -1 }; return f }
        guard fd >= 0 else { return }
        defer { close(fd) }
        switch Self.waitReady(fd, until: .now + timeout) {
        case .ready:
            return
        case .timedOut:
            stop()
            throw SandboxError.timedOut(stage: "slirp4netns", after: timeout)
        case .failed:
            let why = stderrText()
            stop()
            throw SandboxError(stage: "slirp4netns", detail: "(it exited before it was ready\(why.isEmpty ? "" : ": " + why))")
        }
    }

    private enum Readiness { case ready, timedOut, failed }

    /// slirp4netns writes "1" to its ready fd once tap0 is configured; EOF means it exited.
    private static func waitReady(_ fd: Int32, until deadline: ContinuousClock.Instant) -> Readiness {
        while true {
            let left = ContinuousClock.now.duration(to: deadline)
            if left <= .zero { return .timedOut }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ms = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
            let n = poll(&p, 1, ms)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { continue }
            var b: UInt8 = 0
            let r = read(fd, &b, 1)
            if r == 1 { return b == UInt8(ascii: "1") ? .ready : .failed }
            if r < 0 && errno == EINTR { continue }
            return .failed
        }
    }

    /// What the stack wrote on stderr so far (non-blocking; at most 4 KiB, last line first cut).
    private func stderrText() -> String {
        let fd = fds.withLock { $0.stderr }
        guard fd >= 0 else { return "" }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = read(fd, &buf, buf.count)
        guard n > 0 else { return "" }
        return String(decoding: buf[0..<n], as: UTF8.self).split(separator: "\n")
            .filter { !$0.hasPrefix("WARNING: Support for seccomp") }.joined(separator: "; ")
    }

    /// Ends the stack: its exit pipe closed and SIGKILL (it keeps no state worth a graceful
    /// exit), then reaped on a thread of its own. Its exit closes the tap, and the kernel
    /// unregisters the device synchronously in the exiting task (RCU grace periods: ~40 ms
    /// here), which nobody needs to wait for: the process is dying from the first instant
    /// and the container's result is not held back by it. Idempotent.
    func stop() {
        let (exitFD, errFD) = fds.withLock { f -> (Int32, Int32) in
            defer { f = (-1, -1) }
            return f
        }
        guard exitFD >= 0 else { return }
        kill(pid, SIGKILL)
        close(exitFD)
        close(errFD)
        let pid = self.pid
        let reaped: ()? = try? startDetachedThread {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
        if reaped == nil {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
    }

    deinit {
        stop()
        let fd = readyFD.withLock { $0 }
        if fd >= 0 { close(fd) }
    }
}

extension OutboundNetwork {
    /// Whether this host can give a container the outbound network now (the stack's
    /// program, `/dev/net/tun` read-write for the agent's user); admission asks before a
    /// job starts, so a missing device refuses the job naming it and the fix.
    public func preflight() throws(NetworkUnavailable) { _ = try NetworkStack.preflight(stack) }
}
