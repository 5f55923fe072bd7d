import Foundation
import Testing
@testable import Sandbox
import SandboxPolicy

/// A job's shared network (`Pod`) on the real kernel: containers that join it reach each
/// other on 127.0.0.1 and by alias, keep their own PID and mount namespaces, cannot change
/// the pod's network, and nothing of the pod outlives `close()`.
@Suite struct PodTests {
    static func config(_ script: String, pod: Pod?, uid: UInt32 = 0) -> ContainerConfiguration {
        var c = ContainerConfiguration(command: ["/bin/bash", "-c", script])
        c.seccomp = .unconfined
        c.allowRoot = true
        c.pod = pod
        c.uid = uid
        c.gid = uid
        c.hostAliases = ["db", "cache.internal"]
        return c
    }

    static func makePod(_ mapping: ContainerConfiguration.IDMapping = .automatic) async throws -> Pod {
        var pc = Pod.Configuration(idMapping: mapping)
        pc.allowRoot = true
        return try await Pod.create(pc)
    }

    static func collect(_ c: RunningContainer) async -> (String, String) {
        var out = [UInt8](), err = [UInt8]()
        for await chunk in c.output {
            if chunk.stream == .stdout { out += chunk.bytes } else { err += chunk.bytes }
        }
        return (String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    static func run(_ c: ContainerConfiguration) async throws -> (status: TerminationStatus, out: String, err: String) {
        let r = try await RunningContainer.start(c)
        let (out, err) = await collect(r)
        return (await r.wait().status, out, err)
    }

    /// Polls `isListening` until it answers yes or `tries` run out.
    static func waitListening(_ pod: Pod, _ port: UInt16, tries: Int = 100) async -> Bool {
        for _ in 0..<tries {
            if await pod.isListening(port: port, timeout: .milliseconds(200)) { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    static let server = "exec python3 -c 'import socket,sys\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((\"127.0.0.1\", 7411)); s.listen(8)\nwhile True:\n c,_=s.accept(); c.sendall(b\"hello from the service\\n\"); c.close()'"

    @Test(arguments: [ContainerConfiguration.IDMapping.single, .automatic])
    func aServiceIsReachedOnLoopbackAndByAliasFromAnotherContainer(mapping: ContainerConfiguration.IDMapping) async throws {
        let pod = try await Self.makePod(mapping)
        defer { pod.close() }
        #expect(await pod.isListening(port: 7411) == false)
        var svc = Self.config(Self.server, pod: pod, uid: 1000)
        svc.readOnlyRoot = false
        let service = try await RunningContainer.start(svc)
        #expect(await Self.waitListening(pod, 7411))
        // By alias (/etc/hosts) and by address; the step runs as another uid than the service.
        let step = try await Self.run(Self.config(
            "id -u; exec 3<>/dev/tcp/db/7411 && head -n1 <&3; exec 4<>/dev/tcp/127.0.0.1/7411 && head -n1 <&4; grep -cw db /etc/hosts",
            pod: pod))
        #expect(step.status == .exited(0), "\(step.err)")
        #expect(step.out == "0\nhello from the service\nhello from the service\n1\n", "\(step.out) \(step.err)")
        // A container outside the pod has a loopback of its own.
        var outside = Self.config("exec 3<>/dev/tcp/127.0.0.1/7411", pod: nil)
        outside.hostAliases = []
        let o = try await Self.run(outside)
        #expect(o.status != .exited(0))
        service.terminate(grace: .milliseconds(100))
        _ = await Self.collect(service)
        _ = await service.wait()
        #expect(service.idMapping == pod.idMapping)
    }

    @Test func membersKeepTheirOwnPIDNamespaceAndCannotChangeThePodsNetwork() async throws {
        let pod = try await Self.makePod()
        defer { pod.close() }
        let a = try await RunningContainer.start(Self.config("exec sleep 30", pod: pod))
        // Every capability, NET_ADMIN included: it holds them in its own nested user namespace
        // only, which does not own the pod's network namespace.
        var c = Self.config("ls /proc | grep -c '^[0-9]'; ip link set lo down; echo rc=$?; ip route add unreachable 10.0.0.0/8; echo rc=$?", pod: pod)
        c.capabilities = .all
        let b = try await Self.run(c)
        #expect(b.status == .exited(0), "\(b.err)")
        let lines = b.out.split(separator: "\n")
        // PID 1 (init), bash and ls/grep: not the other container's sleep.
        #expect(Int(lines.first ?? "") ?? 99 <= 4, "\(b.out)")
        #expect(lines.contains("rc=2") && !lines.contains("rc=0"), "\(b.out) \(b.err)")
        #expect(b.err.contains("Operation not permitted"), "\(b.err)")
        // lo is still up: the pod still reaches itself.
        let up = try await Self.run(Self.config("cat /sys/class/net/lo/operstate; ip -o link show lo | grep -c UP", pod: pod))
        #expect(up.out.hasSuffix("1\n"), "\(up.out) \(up.err)")
        a.signal(SIGKILL)
        _ = await Self.collect(a)
        _ = await a.wait()
    }

    @Test func aClosedPodRefusesNewMembersAndProbes() async throws {
        let pod = try await Self.makePod()
        pod.close()
        pod.close()
        await #expect(throws: SandboxError.self) { _ = try await RunningContainer.start(Self.config("true", pod: pod)) }
        #expect(await pod.isListening(port: 7411) == false)
    }

    /// A member's network namespace is the pod's, and outlives the pod's close until the
    /// member exits.
    @Test func nothingOfAPodOutlivesItsClose() async throws {
        let pod = try await Self.makePod()
        let (dev, ino) = try Self.netnsIdentity(pod)
        let m = try await RunningContainer.start(Self.config("exec sleep 30", pod: pod))
        // The member's network namespace is the pod's.
        var st = stat()
        #expect(stat("/proc/\(m.pid)/ns/net", &st) == 0 && st.st_ino == ino && st.st_dev == dev)
        pod.close()
        m.signal(SIGKILL)
        _ = await Self.collect(m)
        _ = await m.wait()
    }

    /// An outbound pod: one stack for the whole pod, the fences in place for every member,
    /// the stack's resolver in each member's resolv.conf.
    @Test func anOutboundPodHasOneStackAndItsFences() async throws {
        var pc = Pod.Configuration(network: .outbound)
        pc.allowRoot = true
        let pod = try await Pod.create(pc)
        defer { pod.close() }
        #expect(pod.networkStack == "slirp4netns")
        for _ in 0..<2 {
            var c = Self.config("ip route show; ip -o addr show tap0 | grep -c 10.0.2.100; cat /etc/resolv.conf", pod: pod)
            c.network = .outbound
            let r = try await RunningContainer.start(c)
            let (out, err) = await Self.collect(r)
            #expect(await r.wait().status == .exited(0), "\(err)")
            #expect(r.networkStack == "slirp4netns")
            #expect(out.contains("unreachable 169.254.0.0/16") && out.contains("unreachable 10.0.2.2"), "\(out)")
            #expect(out.contains("nameserver 10.0.2.3") && out.contains("\n1\n"), "\(out)")
        }
    }

    /// The inode of the pod's network namespace.
    static func netnsIdentity(_ pod: Pod) throws -> (UInt64, UInt64) {
        let ns = try #require(pod.duplicateNamespaces())
        defer { close(ns.user); close(ns.net) }
        var st = stat()
        #expect(fstat(ns.net, &st) == 0)
        return (UInt64(st.st_dev), UInt64(st.st_ino))
    }


    @Test func aMemberMustUseThePodsNetworkAndAliasesMustBeHostNames() async throws {
        let pod = try await Self.makePod()
        defer { pod.close() }
        var c = Self.config("true", pod: pod)
        c.network = .outbound
        await #expect(throws: SandboxError.self) { _ = try await RunningContainer.start(c) }
        for bad in ["a b", "x\n1.2.3.4 evil", "", "-x", String(repeating: "a", count: 254), "#c"] {
            var d = Self.config("true", pod: pod)
            d.hostAliases = [bad]
            await #expect(throws: SandboxError.self) { _ = try await RunningContainer.start(d) }
        }
    }

    @Test func manyMembersStartAndStopConcurrently() async throws {
        let pod = try await Self.makePod()
        defer { pod.close() }
        try await withThrowingTaskGroup(of: TerminationStatus.self) { g in
            for i in 0..<8 {
                g.addTask { try await Self.run(Self.config("echo \(i) > /dev/null", pod: pod)).status }
            }
            for try await s in g { #expect(s == .exited(0)) }
        }
    }
}
