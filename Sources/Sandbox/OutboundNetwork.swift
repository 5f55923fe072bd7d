import CAgentSandbox
import AgentSupport
import FoundationEssentials
import Glibc

/// The outbound network of a container (`ContainerConfiguration.Network.outbound`): its own
/// network namespace, a user-mode stack attached from outside as the way out, and the
/// fences agent-init installs before the command starts (agent-init/net.c).
///
/// Unreachable whatever the policy says: the host's loopback (slirp4netns
/// `--disable-host-loopback`, plus an unreachable route to the gateway that stands for it),
/// every address of the agent's own host (read when the container starts), link-local and
/// metadata addresses (169.254.0.0/16, fd00:ec2::254), and `deniedCIDRs`. An allowed host
/// port is one TCP port of the host's loopback, reached at `OutboundNetwork.gateway`.
public struct OutboundNetwork: Sendable, Equatable {
    /// Which user-mode stack runs.
    public enum Stack: String, Sendable, Equatable, CaseIterable {
        /// slirp4netns (Debian 12: 1.2.0, libslirp 4.7), the one this agent drives.
        case slirp4netns
    }

    public var stack: Stack = .slirp4netns
    /// Destinations refused besides the built-in ones (the policy's `network.deniedCIDRs`).
    public var deniedCIDRs: [CIDR] = []
    /// TCP ports of the host's loopback the container may reach at `gateway` (the policy's
    /// `network.allowedHostPorts`); everything else there stays unreachable.
    public var allowedHostPorts: [UInt16] = []
    /// The tap interface's MTU: 65520 makes slirp4netns several times faster than 1500.
    public var mtu: Int = 65520

    public init(stack: Stack = .slirp4netns, deniedCIDRs: [CIDR] = [], allowedHostPorts: [UInt16] = [], mtu: Int = 65520) {
        self.stack = stack
        self.deniedCIDRs = deniedCIDRs
        self.allowedHostPorts = allowedHostPorts
        self.mtu = mtu
    }

    /// The container's address and the stack's gateway (the host, for allowed ports) and
    /// resolver, as slirp4netns `--configure` sets them.
    public static let address = "10.0.2.100"
    public static let gateway = "10.0.2.2"
    public static let resolver = "10.0.2.3"
    /// The name `/etc/hosts` gives the gateway inside (as `host.containers.internal` in podman).
    public static let hostName = "host.agent.internal"

    /// Always unreachable: link-local (cloud metadata at 169.254.169.254 included) and AWS's
    /// IPv6 metadata address.
    public static let builtInDenied: [CIDR] = [CIDR("169.254.0.0/16")!, CIDR("fd00:ec2::254/128")!]

    /// The table allowed host ports are looked up in (agent-init/net.c).
    static let allowedPortsTable: UInt32 = 100

    /// The routes and rules for agent-init, given the host's own addresses.
    func routes(hostAddresses: [CIDR]) -> [agent_sandbox_route] {
        var out: [agent_sandbox_route] = []
        let gw = CIDR(Self.gateway + "/32")!
        var seen = Set<CIDR>()
        for c in Self.builtInDenied + deniedCIDRs + hostAddresses + [gw] where seen.insert(c).inserted {
            out.append(c.route(kind: AGENT_SANDBOX_ROUTE_UNREACHABLE))
        }
        if !allowedHostPorts.isEmpty {
            out.append(gw.route(kind: AGENT_SANDBOX_ROUTE_DIRECT, table: Self.allowedPortsTable))
            for port in Set(allowedHostPorts).sorted() {
                out.append(gw.route(kind: AGENT_SANDBOX_ROUTE_RULE_PORT, port: port, table: Self.allowedPortsTable))
            }
        }
        return out
    }

    /// Every address of the host's interfaces but loopback, as /32 and /128: slirp4netns
    /// connects from the host's namespace, so without these a job could reach whatever
    /// listens on the host's own addresses.
    static func hostAddresses() -> [CIDR] {
        var list: UnsafeMutablePointer<ifaddrs>? = nil
        guard getifaddrs(&list) == 0 else { return [] }
        defer { freeifaddrs(list) }
        var out: [CIDR] = []
        var p = list
        while let a = p {
            defer { p = a.pointee.ifa_next }
            guard let sa = a.pointee.ifa_addr else { continue }
            if sa.pointee.sa_family == sa_family_t(AF_INET) {
                let bytes = withUnsafeBytes(of: UnsafeRawPointer(sa).assumingMemoryBound(to: sockaddr_in.self).pointee.sin_addr) { Array($0) }
                if bytes[0] != 127 { out.append(CIDR(family: AF_INET, bytes: bytes, prefix: 32)) }
            } else if sa.pointee.sa_family == sa_family_t(AF_INET6) {
                let bytes = withUnsafeBytes(of: UnsafeRawPointer(sa).assumingMemoryBound(to: sockaddr_in6.self).pointee.sin6_addr) { Array($0) }
                let loopback = bytes[0..<15].allSatisfy { $0 == 0 } && bytes[15] == 1
                let linkLocal = bytes[0] == 0xfe && bytes[1] & 0xc0 == 0x80
                if !loopback && !linkLocal { out.append(CIDR(family: AF_INET6, bytes: bytes, prefix: 128)) }
            }
        }
        return out
    }
}

/// An IPv4 or IPv6 prefix (`10.0.0.0/8`, `fd00:ec2::254/128`; a bare address is /32 or /128).
public struct CIDR: Sendable, Hashable, CustomStringConvertible {
    public let family: Int32
    /// The network's bytes (host bits cleared), 4 or 16.
    public let bytes: [UInt8]
    public let prefix: Int

    init(family: Int32, bytes: [UInt8], prefix: Int) {
        self.family = family
        self.prefix = prefix
        var b = bytes
        for i in 0..<b.count {
            let keep = max(0, min(8, prefix - i * 8))
            b[i] &= keep == 0 ? 0 : UInt8(truncatingIfNeeded: 0xff << (8 - keep))
        }
        self.bytes = b
    }

    /// Parses `ADDR[/LEN]`; nil if it is not one.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        let addr = String(parts[0])
        let v6 = addr.contains(":")
        var buf = [UInt8](repeating: 0, count: 16)
        guard inet_pton(v6 ? AF_INET6 : AF_INET, addr, &buf) == 1 else { return nil }
        let max = v6 ? 128 : 32
        var len = max
        if parts.count == 2 {
            guard let n = Int(parts[1]), (0...max).contains(n), parts[1].allSatisfy(\.isNumber) else { return nil }
            len = n
        }
        self.init(family: v6 ? AF_INET6 : AF_INET, bytes: Array(buf[0..<(v6 ? 16 : 4)]), prefix: len)
    }

    public var description: String {
        var out = [CChar](repeating: 0, count: 64)
        var b = bytes + [UInt8](repeating: 0, count: 16 - bytes.count)
        _ = inet_ntop(family, &b, &out, socklen_t(out.count))
        return String(cString: out) + "/\(prefix)"
    }

    func route(kind: agent_sandbox_route_kind, port: UInt16 = 0, table: UInt32 = 0) -> agent_sandbox_route {
        var r = agent_sandbox_route()
        r.kind = Int32(kind.rawValue)
        r.family = family
        withUnsafeMutableBytes(of: &r.addr) { raw in for (i, b) in bytes.enumerated() { raw[i] = b } }
        r.prefix_len = UInt8(prefix)
        r.port = port
        r.table = table
        return r
    }
}
