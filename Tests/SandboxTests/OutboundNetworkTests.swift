import CAgentSandbox
import Glibc
import Testing
@testable import Sandbox
import SandboxPolicy

/// The outbound network's pure parts: prefixes, the fences handed to agent-init, the
/// container's network files and the `--network` gate.
@Suite struct OutboundNetworkTests {
    @Test func prefixesAreParsedAndNormalised() {
        #expect(CIDR("10.1.2.3/8")?.description == "10.0.0.0/8")
        #expect(CIDR("192.0.2.7")?.description == "192.0.2.7/32")
        #expect(CIDR("fd00:ec2::254")?.description == "fd00:ec2::254/128")
        #expect(CIDR("fd00::1/8")?.description == "fd00::/8")
        #expect(CIDR("10.0.0.0/33") == nil && CIDR("10.0.0.0/") == nil && CIDR("host/8") == nil && CIDR("10.0.0.0/-1") == nil)
    }

    func kinds(_ routes: [agent_sandbox_route]) -> [Int32] { routes.map(\.kind) }

    @Test func fencesCoverMetadataHostAddressesDeniedCIDRsAndTheGateway() {
        let o = OutboundNetwork(deniedCIDRs: [CIDR("10.9.0.0/16")!])
        let routes = o.routes(hostAddresses: [CIDR("192.0.2.2")!, CIDR("10.9.0.0/16")!])
        let unreachable = Int32(AGENT_SANDBOX_ROUTE_UNREACHABLE.rawValue)
        #expect(routes.allSatisfy { $0.kind == unreachable })
        // Duplicates once; metadata, link-local, denied, host and the gateway all there.
        #expect(routes.count == 5)
        #expect(routes.map { $0.prefix_len } == [16, 128, 16, 32, 32])
        #expect(routes.last.map { withUnsafeBytes(of: $0.addr) { Array($0.prefix(4)) } } == [10, 0, 2, 2])
    }

    @Test func anAllowedHostPortIsOneRuleIntoATableWhereOnlyTheGatewayIs() {
        let o = OutboundNetwork(allowedHostPorts: [5432, 80, 5432])
        let routes = o.routes(hostAddresses: [])
        let direct = routes.filter { $0.kind == Int32(AGENT_SANDBOX_ROUTE_DIRECT.rawValue) }
        let rules = routes.filter { $0.kind == Int32(AGENT_SANDBOX_ROUTE_RULE_PORT.rawValue) }
        #expect(direct.count == 1 && direct[0].table == 100 && direct[0].prefix_len == 32)
        #expect(rules.map(\.port) == [80, 5432])
        #expect(rules.allSatisfy { $0.table == 100 && $0.prefix_len == 32 })
    }

    @Test func hostAddressesLeaveOutLoopback() {
        let a = OutboundNetwork.hostAddresses()
        #expect(!a.contains { $0.description.hasPrefix("127.") || $0.description == "::1/128" })
        #expect(a.allSatisfy { $0.prefix == ($0.family == AF_INET ? 32 : 128) })
    }

    @Test func outboundGetsItsOwnNetworkFilesAndSysfs() throws {
        var c = ContainerConfiguration(command: ["true"])
        c.network = .outbound
        c.rootfs = .directory(HostPath("/nonexistent-rootfs"))
        let ops = try SetupPlan(configuration: c, hostEntry: { _ in .missing }).ops
        let files = ops.filter { $0.kind == .file }
        #expect(files.map(\.target) == ["etc/hosts", "etc/resolv.conf"])
        // An untrusted tree: no symlink is followed; a root-owned one without them is skipped.
        #expect(files.allSatisfy { $0.flags & SetupOp.noSymlinks != 0 && $0.flags & SetupOp.optional != 0 })
        #expect(String(decoding: files[1].contents, as: UTF8.self) == "nameserver 10.0.2.3\n")
        #expect(String(decoding: files[0].contents, as: UTF8.self).contains("10.0.2.2\thost.agent.internal"))
        #expect(ops.contains { $0.kind == .mount && $0.source == "sysfs" })
        c.network = .none
        #expect(try SetupPlan(configuration: c, hostEntry: { _ in .missing }).ops.filter { $0.kind == .file }.isEmpty)
    }

    @Test func theGateRefusesOutboundUnlessThePolicyAllowsIt() throws {
        var limits = SandboxLimits()
        let gate = ExecPolicyGate(policy: limits, source: "built-in")
        #expect(throws: ExecPolicyGate.Refusal.self) { try gate.network("outbound") }
        do { _ = try gate.network("outbound") } catch let r as ExecPolicyGate.Refusal { #expect(r.key == "allowOutboundNetwork") }
        limits.allowOutboundNetwork = true
        limits.network.allowedHostPorts = [8080]
        limits.network.deniedCIDRs = ["10.0.0.0/8"]
        let open = ExecPolicyGate(policy: limits, source: "built-in")
        #expect(try open.network("outbound") == .outbound)
        #expect(open.outbound.allowedHostPorts == [8080] && open.outbound.deniedCIDRs == [CIDR("10.0.0.0/8")!])
        #expect(throws: ExecParsing.InvalidValue.self) { try open.network("bridge") }
    }
}
