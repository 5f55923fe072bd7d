import Foundation
import Synchronization
import Testing

/// A stand-in for the internet that has no way out: a network namespace the test makes (as
/// root) with a veth pair to the host, no default route and servers on its addresses. The
/// host routes to it, so slirp4netns (running as the test user in the host's namespace)
/// reaches it like any remote server, and nothing in it reaches anything else.
///
/// The namespace is held by a process (`unshare -n sleep`), not named with `ip netns add`:
/// that would add a mount to the test process's mount namespace, which other tests running
/// beside these compare before and after. Its interfaces are named after the registry port
/// of the run (ci/test.sh's isolation variable), so two worktrees' runs never share one.
final class TestInternet: @unchecked Sendable {
    static var tag: String { ProcessInfo.processInfo.environment["AGENT_TEST_REGISTRY_PORT"] ?? "5000" }
    /// The process holding the namespace; commands enter it with `nsenter -t PID -n`.
    private var holder: Process?
    /// Each instance its own interfaces and subnet: one torn down on a thread while the
    /// next test makes its own never collide.
    static let counter = Mutex(0)
    let serial = TestInternet.counter.withLock { n -> Int in n += 1; return n % 10 }
    var hostSide: String { "ain\(TestInternet.tag)\(serial)h" }
    var nsSide: String { "ain\(TestInternet.tag)\(serial)n" }
    /// 10.231.K.0/24: K from the tag and the instance, so parallel runs do not overlap.
    var subnet: Int { ((Int(TestInternet.tag) ?? 5000) % 25) * 10 + serial }
    var hostAddress: String { "10.231.\(subnet).1" }
    /// The server standing for the internet.
    var serverAddress: String { "10.231.\(subnet).2" }
    /// A second server, in a CIDR the tests' policies deny.
    var deniedAddress: String { "10.231.\(subnet).3" }
    private var servers: [Process] = []

    /// Makes the namespace and starts an HTTP server on `serverAddress` and `deniedAddress`
    /// at `port`, serving `body` as /probe.
    init(port: Int, body: String) throws {
        _ = try? Self.sh("ip link del \(hostSide) 2>/dev/null; true")
        let h = Process()
        h.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        h.arguments = ["--net", "sleep", "3600"]
        try h.run()
        holder = h
        let pid = h.processIdentifier
        // unshare execs sleep once the namespace exists: wait until it is not ours any more.
        let own = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net")
        for _ in 0..<100 where (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/net")) == own {
            usleep(10_000)
        }
        try Self.sh("ip link add \(hostSide) type veth peer name \(nsSide) netns \(pid)")
        try Self.sh("ip addr add \(hostAddress)/24 dev \(hostSide) && ip link set \(hostSide) up")
        try Self.sh("nsenter -t \(pid) -n ip addr add \(serverAddress)/24 dev \(nsSide)")
        try Self.sh("nsenter -t \(pid) -n ip addr add \(deniedAddress)/24 dev \(nsSide)")
        try Self.sh("nsenter -t \(pid) -n sh -c 'ip link set \(nsSide) up && ip link set lo up'")
        let root = try Harness.scratch("inet")
        try Harness.write(body, to: root + "/probe")
        _ = try start(["python3", "-m", "http.server", "\(port)", "--bind", "0.0.0.0", "--directory", root])
        try Self.waitForServer(serverAddress, port)
    }

    /// Another server in the test internet: `command` run inside the namespace.
    func start(_ command: [String]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        p.arguments = ["-t", "\(holder!.processIdentifier)", "-n", "--"] + command
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        servers.append(p)
        return p
    }

    func stop() {
        for s in servers { Self.kill(s) }
        servers = []
        // The namespace goes with its last process; the veth pair with it.
        if let holder { Self.kill(holder) }
        holder = nil
    }

    /// SIGKILL now (a child of the test process inherits its blocked signals, so SIGTERM,
    /// `terminate()`, may never arrive), reaped on a thread of its own: nothing blocks, and
    /// nothing is left running if the test process ends first.
    static func kill(_ p: Process) {
        guard p.isRunning else { return }
        Glibc.kill(p.processIdentifier, SIGKILL)
        Thread.detachNewThread { p.waitUntilExit() }
    }


    /// Waits until a TCP connect to `host:port` succeeds from the host (5 s at most).
    static func waitForServer(_ host: String, _ port: Int) throws {
        for _ in 0..<100 {
            if (try? sh("python3 -c 'import socket; socket.create_connection((\"\(host)\", \(port)), 0.2)' 2>/dev/null")) != nil { return }
            usleep(50_000)
        }
        throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "no server at \(host):\(port)"])
    }

    @discardableResult
    static func sh(_ script: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", script]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "\(script): status \(p.terminationStatus)"])
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// A python3 one-liner for the container (host rootfs): connects to argv[1]:argv[2] and
    /// prints `OK <first bytes>` (an HTTP GET of /probe) or `ERR <errno name>`.
    static let probe = """
        import socket, sys, errno
        try:
            s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)
            s.sendall(b"GET /probe HTTP/1.0\\r\\n\\r\\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk: break
                data += chunk
            print("OK", data.split(b"\\r\\n\\r\\n", 1)[-1].decode(errors="replace").strip())
        except OSError as e:
            print("ERR", errno.errorcode.get(e.errno, str(e)) if e.errno else type(e).__name__)
        """

    /// Writes a policy file for the test user (outbound allowed plus `extra` keys).
    static func policy(_ extra: String = "") throws -> String {
        let dir = try Harness.scratch("netpolicy")
        let path = dir + "/policy.json"
        try Harness.write("{\"allowOutboundNetwork\": true\(extra.isEmpty ? "" : ", " + extra)}", to: path)
        return path
    }

    /// Runs `body` on a thread of its own: the set-up and teardown here block (processes,
    /// waits), and a test that blocks a cooperative thread stalls every other test's agent
    /// (see `Harness.readToEnd`).
    static func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
        }
    }

    /// `init(port:body:)` off the cooperative pool.
    static func make(port: Int, body: String) async throws -> TestInternet {
        try await offPool { try TestInternet(port: port, body: body) }
    }

    /// `sh` off the cooperative pool.
    @discardableResult
    static func shell(_ script: String) async throws -> String {
        try await offPool { try sh(script) }
    }

    /// A free TCP port on the host (bound and released).
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}
