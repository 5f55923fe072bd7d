import Foundation
import Testing

/// `"network": "outbound"` against a real kernel and a real slirp4netns, with no internet:
/// a namespace the test makes (`TestInternet`) stands for it. The hostile cases first: the
/// host's loopback, its own addresses, link-local/metadata and denied CIDRs are unreachable,
/// container root with CAP_NET_ADMIN cannot remove the fences, a missing /dev/net/tun
/// refuses the job naming the fix, and no stack outlives its container or the agent.
///
/// Serialized: the tun test makes /dev/net/tun 0600 for its duration, which would fail any
/// outbound test running beside it.
@Suite(.serialized, .enabled(if: Harness.isRoot, "making the test internet (ip netns, veth) needs root"))
struct NetworkOutboundTests {
    static let body = "internet-\(UUID().uuidString.prefix(8))"

    /// Runs the probe in an outbound (or other) container: `OK <body>` or `ERR <errno>`.
    func probe(_ host: String, _ port: Int, network: String = "outbound", policy: String,
               extra: [String] = []) async throws -> String {
        let r = try await Harness.exec(["--policy", policy, "--network", network] + extra,
                                       ["python3", "-c", TestInternet.probe, host, "\(port)"])
        #expect(r.status == 0, "\(r.stderr)")
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func outboundReachesTheInternetAndNoneDoesNot() async throws {
        let port = TestInternet.freePort()
        let net = try await TestInternet.make(port: port, body: Self.body)
        defer { net.stop() }
        let policy = try TestInternet.policy()
        #expect(try await probe(net.serverAddress, port, policy: policy) == "OK \(Self.body)")
        #expect(try await probe(net.serverAddress, port, network: "none", policy: policy) == "ERR ENETUNREACH")
        // The same in a busybox rootfs (an untrusted tree; its wget crashes, nc does not):
        // DNS and hosts are the container's own.
        let r = try await Harness.exec(["--policy", policy, "--network", "outbound", "--rootfs", Harness.busyboxRootfs],
                                       ["sh", "-c", "cat /etc/resolv.conf /etc/hosts; printf 'GET /probe HTTP/1.0\\r\\n\\r\\n' | nc -w 3 \(net.serverAddress) \(port)"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("nameserver 10.0.2.3"))
        #expect(r.stdout.contains("10.0.2.2\thost.agent.internal"))
        #expect(r.stdout.contains(Self.body))
    }

    @Test func hostLoopbackHostAddressesMetadataAndDeniedCIDRsAreUnreachable() async throws {
        let port = TestInternet.freePort()
        let net = try await TestInternet.make(port: port, body: Self.body)
        defer { net.stop() }
        // Servers on the host: one on loopback only, one on every address of the host.
        let loopPort = TestInternet.freePort()
        let loop = try await Self.hostServer(bind: "127.0.0.1", port: loopPort)
        defer { TestInternet.kill(loop) }
        let anyPort = TestInternet.freePort()
        let any = try await Self.hostServer(bind: "0.0.0.0", port: anyPort)
        defer { TestInternet.kill(any) }
        let policy = try TestInternet.policy(#""network": {"deniedCIDRs": ["\#(net.deniedAddress)/32"]}"#)
        // Reachable from the host itself, so a refusal below is the fence, not a dead server.
        try await TestInternet.offPool { try TestInternet.waitForServer(net.deniedAddress, port) }
        #expect(try await probe(net.serverAddress, port, policy: policy) == "OK \(Self.body)")
        #expect(try await probe(net.deniedAddress, port, policy: policy) == "ERR EHOSTUNREACH")
        // The gateway stands for the host's loopback: unreachable with no allowed port.
        #expect(try await probe("10.0.2.2", loopPort, policy: policy) == "ERR EHOSTUNREACH")
        // The container's own loopback is its own.
        #expect(try await probe("127.0.0.1", loopPort, policy: policy) == "ERR ECONNREFUSED")
        // Every address of the host (the veth's and the host's other interfaces).
        var hostAddresses = [net.hostAddress]
        hostAddresses += try await TestInternet.shell("ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1")
            .split(separator: "\n").map(String.init).filter { !$0.isEmpty }
        for a in Set(hostAddresses) {
            #expect(try await probe(a, anyPort, policy: policy) == "ERR EHOSTUNREACH", "host address \(a)")
        }
        // Link-local and cloud metadata.
        #expect(try await probe("169.254.169.254", 80, policy: policy) == "ERR EHOSTUNREACH")
        #expect(try await probe("169.254.1.1", 80, policy: policy) == "ERR EHOSTUNREACH")
    }

    @Test func aPolicyAllowedHostPortIsReachableAndNoOtherOne() async throws {
        let allowed = TestInternet.freePort(), other = TestInternet.freePort()
        let a = try await Self.hostServer(bind: "127.0.0.1", port: allowed)
        defer { TestInternet.kill(a) }
        let b = try await Self.hostServer(bind: "127.0.0.1", port: other)
        defer { TestInternet.kill(b) }
        let policy = try TestInternet.policy(#""network": {"allowedHostPorts": [\#(allowed)]}"#)
        #expect(try await probe("10.0.2.2", allowed, policy: policy) == "OK host-\(allowed)")
        #expect(try await probe("host.agent.internal", allowed, policy: policy) == "OK host-\(allowed)")
        #expect(try await probe("10.0.2.2", other, policy: policy) == "ERR EHOSTUNREACH")
    }

    @Test func containerRootWithNetAdminCannotRemoveTheFences() async throws {
        let policy = try TestInternet.policy(
            #""seccompProfile": "unconfined", "capabilities": ["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_ADMIN"], "network": {"allowedHostPorts": [9]}"#)
        let script = """
            ip route del unreachable 169.254.0.0/16; echo "route=$?"
            ip route flush table main; echo "flush=$?"
            ip rule del pref 1006 2>/dev/null || ip rule del lookup 100; echo "rule=$?"
            ip link set tap0 down; echo "link=$?"
            ip route show | grep -c unreachable
            """
        let r = try await Harness.exec(["--policy", policy, "--network", "outbound", "--seccomp", "unconfined",
                                        "--cap-add", "CAP_NET_ADMIN", "--cap-add", "CAP_SYS_ADMIN"],
                                       ["sh", "-c", script])
        #expect(r.status == 0, "\(r.stderr)")
        for op in ["route", "flush", "rule", "link"] {
            #expect(r.stdout.contains("\(op)=2"), "\(op) did not fail: \(r.stdout) \(r.stderr)")
        }
        #expect(r.stderr.contains("Operation not permitted"))
        // A socket of its own kind does not help either: packet sockets need CAP_NET_RAW over the namespace.
        let raw = try await Harness.exec(["--policy", policy, "--network", "outbound", "--seccomp", "unconfined",
                                          "--cap-add", "CAP_NET_RAW"],
                                         ["python3", "-c", "import socket\ntry:\n socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n print('open')\nexcept OSError as e:\n print('refused', e.errno)"])
        #expect(raw.stdout.contains("refused 1"), "\(raw.stdout) \(raw.stderr)")
    }

    @Test func theJobNeedsThePolicyAndReportsTheStack() async throws {
        let port = TestInternet.freePort()
        let net = try await TestInternet.make(port: port, body: Self.body)
        defer { net.stop() }
        let job = """
            {"version": 1, "id": "outbound", "steps": [
              {"name": "fetch", "network": "outbound", "run": "wget -q -T 3 -O - http://\(net.serverAddress):\(port)/probe"},
              {"name": "offline", "run": "wget -q -T 2 -O - http://\(net.serverAddress):\(port)/probe || echo unreachable"}]}
            """
        // Refused by the built-in policy, naming the key; nothing runs.
        let refused = try JobFixture(job)
        let r0 = try await refused.run()
        #expect(r0.status == 2, "\(r0.stderr)")
        #expect(r0.stderr.contains("steps[0].network") && r0.stderr.contains("allowOutboundNetwork"), "\(r0.stderr)")
        let f = try JobFixture(job)
        let r = try await f.run(["--policy", try TestInternet.policy()])
        #expect(r.status == 0, "\(r.stderr)")
        let steps = try f.steps()
        let n0 = steps[0]["network"] as? [String: Any], n1 = steps[1]["network"] as? [String: Any]
        #expect(n0?["mode"] as? String == "outbound" && n0?["stack"] as? String == "slirp4netns")
        #expect(n1?["mode"] as? String == "none" && n1?["stack"] == nil)
        #expect(try f.read("logs/01-fetch.log").contains(Self.body))
        #expect(try f.read("logs/02-offline.log").contains("unreachable"))
        #expect(try f.read("log.txt").contains("network: outbound through slirp4netns"))
    }

    /// The device is made 0600 only in a private mount namespace of the agent's run (a
    /// copy of the node bound over /dev/net/tun there): changing the real one's mode made
    /// other suites' outbound containers, running meanwhile, fail at slirp4netns.
    @Test(.enabled(if: Harness.isRoot, "a private mount namespace with its own /dev/net/tun needs root"))
    func anUnusableTunDeviceRefusesTheJobNamingTheFix() async throws {
        let f = try JobFixture(#"{"version": 1, "id": "tun", "network": "outbound", "steps": [{"name": "s", "run": "echo ran"}]}"#)
        let policy = try TestInternet.policy()
        let dir = try Harness.scratch("tun")
        let u = Harness.user
        let env = Harness.baseEnvironment().map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " ")
        let agent = "setpriv --reuid=\(u.uid) --regid=\(u.gid) --clear-groups -- env -i \(env) \(Harness.agentBinary)"
        try BuildTests.sh("mknod -m 600 \(dir)/tun c 10 200")
        func inPrivateTun(_ args: String) throws -> String {
            try BuildTests.output("""
            unshare -m --propagation private sh -c 'mount --bind \(dir)/tun /dev/net/tun && \
              \(agent) \(args); echo "status=$?"'
            """)
        }
        let fix = "/dev/net/tun is not readable and writable by the agent user (mode 0600); make it 0666, as Debian's default is"
        let r = try inPrivateTun("run-job \(f.job) --output \(f.results) --state-dir \(f.state) --progress plain --policy \(policy)")
        #expect(r.hasSuffix("status=2\n"), "\(r)")
        #expect(r.contains(fix), "\(r)")
        #expect(!r.contains("ran\n"), "\(r)")
        let e = try inPrivateTun("exec --policy \(policy) --network outbound -- true")
        #expect(e.hasSuffix("status=125\n") && e.contains(fix), "\(e)")
        // The real device was never touched.
        var st = stat()
        #expect(stat("/dev/net/tun", &st) == 0 && st.st_mode & 0o777 == 0o666)
    }

    @Test func noStackOutlivesItsContainerOrTheAgent() async throws {
        let policy = try TestInternet.policy()
        // After a normal run: the stack is gone before the agent reports the result.
        let r = try await Harness.exec(["--policy", policy, "--network", "outbound", "--verbose"], ["true"])
        #expect(r.status == 0 && r.stderr.contains("network: outbound through slirp4netns"), "\(r.stderr)")
        // The agent killed with SIGKILL mid-step: its stack exits on its own (--exit-fd).
        let (p, _) = try Harness.start(["exec", "--policy", policy, "--network", "outbound", "--verbose", "--", "sleep", "60"],
                                       until: "network: outbound")
        let agent = p.processIdentifier
        let stacks = Self.children(of: agent, named: "slirp4netns")
        #expect(stacks.count == 1, "stacks of \(agent): \(stacks)")
        kill(agent, SIGKILL)
        await Harness.waitForExit(p)
        var left = stacks
        for _ in 0..<50 where !left.isEmpty {
            try await Task.sleep(for: .milliseconds(100))
            left = left.filter { kill($0, 0) == 0 && !Self.isZombie($0) }
        }
        #expect(left.isEmpty, "slirp4netns outlived the agent: \(left)")
    }

    /// A host HTTP server that answers every path with `host-<port>`.
    static func hostServer(bind: String, port: Int) async throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = ["-c", """
            import http.server
            class H(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    b = b"host-\(port)"
                    self.send_response(200); self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
                def log_message(self, *a): pass
            http.server.HTTPServer(("\(bind)", \(port)), H).serve_forever()
            """]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        try await TestInternet.offPool { try TestInternet.waitForServer(bind == "0.0.0.0" ? "127.0.0.1" : bind, port) }
        return p
    }

    /// Pids whose parent is `parent` and whose comm is `name`.
    static func children(of parent: Int32, named name: String) -> [Int32] {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.compactMap { Int32($0) } ?? []
        return pids.filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")"), let open = stat.firstIndex(of: "(") else { return false }
            let comm = stat[stat.index(after: open)..<close]
            let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
            return comm == name && fields.count > 1 && Int32(fields[1]) == parent
        }
    }

    static func isZombie(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(close, offsetBy: 2)...].hasPrefix("Z")
    }
}
