import AgentSupport
import FoundationEssentials
import Glibc

/// The sandbox part of the agent policy: what any container on this agent may have at
/// most (capabilities, seccomp profile, host network, netlink and raw sockets). It knows
/// nothing of jobs; the agent core's `AgentPolicy` holds it with the job-level keys
/// (roots, budgets, secrets) and reads both from one policy file.
public struct SandboxLimits: Sendable, Equatable {
    /// Which seccomp profile containers get.
    public enum SeccompProfileSetting: Sendable, Equatable {
        /// `"default"`: the project's profile (`policies/seccomp-default.json`), plus netlink
        /// and raw sockets where `allowNetlink`/`allowRawSockets` say so.
        case projectDefault
        /// `"unconfined"`: no seccomp filter (no_new_privs and capabilities still apply).
        case unconfined
        /// Any other string: a Docker-format profile file; relative paths are resolved
        /// against the policy file's directory when it is loaded.
        case file(String)
    }

    /// Capabilities a container may keep (default: Docker's 14).
    public var capabilities: CapabilitySet = .dockerDefault
    public var seccompProfile: SeccompProfileSetting = .projectDefault
    /// Whether containers may share the agent's network namespace.
    public var allowHostNetwork = false
    /// Whether containers may have `network: outbound` (their own namespace, a user-mode
    /// stack as the way out).
    public var allowOutboundNetwork = false
    /// How the outbound network is made and fenced (`"network"` in the policy file).
    public var network = OutboundSettings()
    /// Whether the default profile allows netlink sockets.
    public var allowNetlink = false
    /// Whether the default profile allows raw IP and packet sockets.
    public var allowRawSockets = false

    public init() {}

    /// The policy keys these limits are read from.
    public static let keys: Set<String> = ["capabilities", "seccompProfile", "allowHostNetwork", "allowNetlink", "allowRawSockets",
                                           "allowOutboundNetwork", "network"]

    /// The policy's `network` object: the outbound network's stack and fences.
    public struct OutboundSettings: Sendable, Equatable {
        /// `"auto"` (the probe picks: slirp4netns) or `"slirp4netns"`.
        public var stack = "auto"
        /// Destinations outbound containers may not reach, besides the built-in ones
        /// (link-local, metadata, the host's own addresses and loopback): `ADDR/LEN`.
        public var deniedCIDRs: [String] = []
        /// TCP ports of the host's loopback outbound containers may reach (at 10.0.2.2).
        public var allowedHostPorts: [UInt16] = []
        /// The stack's MTU (65520: the fast one).
        public var mtu: UInt64 = 65520
        public init() {}
        public static let stacks = ["auto", "slirp4netns"]
    }

    /// Reads the sandbox keys of a policy document (the caller rejects unknown keys).
    /// `baseDirectory` anchors a relative `seccompProfile` path.
    package init(reading root: JSONObjectReader, file: String, baseDirectory: String?) throws {
        self.init()
        if let names = try root.strings("capabilities") {
            var set = CapabilitySet.empty
            for (i, name) in names.enumerated() {
                do {
                    set = set.union(try CapabilitySet(names: [name]))
                } catch {
                    throw PolicyError(file: file, key: "capabilities[\(i)]", problem: "\(error)")
                }
            }
            capabilities = set
        }
        if let profile = try root.string("seccompProfile") {
            switch profile {
            case "default": seccompProfile = .projectDefault
            case "unconfined": seccompProfile = .unconfined
            case "": throw PolicyError(file: file, key: "seccompProfile", problem: "empty (use \"default\", \"unconfined\" or a file path)")
            default:
                if profile.hasPrefix("/") || baseDirectory == nil {
                    seccompProfile = .file(profile)
                } else {
                    seccompProfile = .file(URL(fileURLWithPath: profile, relativeTo: URL(fileURLWithPath: baseDirectory!, isDirectory: true)).standardizedFileURL.path)
                }
            }
        }
        allowHostNetwork = try root.bool("allowHostNetwork") ?? allowHostNetwork
        allowOutboundNetwork = try root.bool("allowOutboundNetwork") ?? allowOutboundNetwork
        if let n = try root.object("network") { network = try Self.outbound(n, file: file) }
        allowNetlink = try root.bool("allowNetlink") ?? allowNetlink
        allowRawSockets = try root.bool("allowRawSockets") ?? allowRawSockets
    }

    /// The sandbox keys as JSON fields, in the shape of `policies/policy.json`.
    package var jsonFields: [String: JSONValue] {
        var fields: [String: JSONValue] = [
            "capabilities": .array(capabilities.names.map(JSONValue.string)),
            "allowHostNetwork": .bool(allowHostNetwork),
            "allowNetlink": .bool(allowNetlink),
            "allowRawSockets": .bool(allowRawSockets),
            "allowOutboundNetwork": .bool(allowOutboundNetwork),
            "network": .object([
                "stack": .string(network.stack),
                "deniedCIDRs": .array(network.deniedCIDRs.map(JSONValue.string)),
                "allowedHostPorts": .array(network.allowedHostPorts.map { .unsigned(UInt64($0)) }),
                "mtu": .unsigned(network.mtu),
            ]),
        ]
        fields["seccompProfile"] = switch seccompProfile {
        case .projectDefault: .string("default")
        case .unconfined: .string("unconfined")
        case .file(let path): .string(path)
        }
        return fields
    }

    /// Reads `network`: every entry checked, so a typo fails when the policy loads.
    private static func outbound(_ r: JSONObjectReader, file: String) throws -> OutboundSettings {
        try r.rejectUnknownKeys(["stack", "deniedCIDRs", "allowedHostPorts", "mtu"])
        var o = OutboundSettings()
        if let stack = try r.string("stack") {
            guard OutboundSettings.stacks.contains(stack) else {
                throw PolicyError(file: file, key: "network.stack", problem: "\"\(stack)\" is not one of \(OutboundSettings.stacks.joined(separator: ", "))")
            }
            o.stack = stack
        }
        for (i, cidr) in (try r.strings("deniedCIDRs") ?? []).enumerated() {
            guard isCIDR(cidr) else {
                throw PolicyError(file: file, key: "network.deniedCIDRs[\(i)]", problem: "\"\(cidr)\" is not an IPv4 or IPv6 ADDR/LEN")
            }
            o.deniedCIDRs.append(cidr)
        }
        for (i, v) in (try r.array("allowedHostPorts") ?? []).enumerated() {
            guard case .unsigned(let n) = v, (1...65535).contains(n) else {
                throw PolicyError(file: file, key: "network.allowedHostPorts[\(i)]", problem: "expected a TCP port (1 to 65535)")
            }
            o.allowedHostPorts.append(UInt16(n))
        }
        if let mtu = try r.unsigned("mtu") {
            guard (1280...65520).contains(mtu) else {
                throw PolicyError(file: file, key: "network.mtu", problem: "\(mtu) is outside 1280...65520")
            }
            o.mtu = mtu
        }
        return o
    }

    /// `ADDR` or `ADDR/LEN`, IPv4 or IPv6.
    static func isCIDR(_ text: String) -> Bool {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        let v6 = parts[0].contains(":")
        var buf = [UInt8](repeating: 0, count: 16)
        guard inet_pton(v6 ? AF_INET6 : AF_INET, String(parts[0]), &buf) == 1 else { return false }
        guard parts.count == 2 else { return true }
        guard !parts[1].isEmpty, parts[1].allSatisfy(\.isNumber), let n = Int(parts[1]) else { return false }
        return n <= (v6 ? 128 : 32)
    }

    /// The seccomp policy containers get. A profile file is read and checked now, so a
    /// broken profile fails before any container starts.
    public func seccompPolicy() throws -> SeccompPolicy {
        switch seccompProfile {
        case .projectDefault:
            return .projectDefault(allowNetlink: allowNetlink, allowRawSockets: allowRawSockets)
        case .unconfined:
            return .unconfined
        case .file(let path):
            do {
                return try .file(path)
            } catch let error as SeccompError {
                throw PolicyError(file: path, key: "seccompProfile", problem: error.message)
            }
        }
    }

    /// The capabilities a container gets for `--cap-drop`/`--cap-add` style requests:
    /// see `CapabilitySet.narrowing(_:drop:add:)`. Throws naming a capability outside the policy.
    public func capabilities(drop: [String], add: [String]) throws -> CapabilitySet {
        try CapabilitySet.narrowing(capabilities, drop: drop, add: add)
    }
}

/// Why a file could not be read, as `strerror` says it ("No such file or directory").
public struct FileReadError: Error, CustomStringConvertible {
    /// An errno, or 0 for "not a regular file".
    public var code: Int32
    public var description: String { code == 0 ? "not a regular file" : String(cString: strerror(code)) }
}

/// Reads a whole regular file (at most 16 MiB: policies and profiles are small).
public func readPolicyFile(_ path: String) -> Result<Data, FileReadError> {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return .failure(FileReadError(code: errno)) }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { return .failure(FileReadError(code: errno)) }
    guard info.st_mode & S_IFMT == S_IFREG else { return .failure(FileReadError(code: 0)) }
    var data = Data()
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n < 0 { return .failure(FileReadError(code: errno)) }
        if n == 0 { return .success(data) }
        data.append(contentsOf: buffer[0..<n])
        if data.count > 16 << 20 { return .failure(FileReadError(code: EFBIG)) }
    }
}

/// A policy file that cannot be used: names the file and the JSON key that is wrong.
public struct PolicyError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    /// A JSON path such as `cache.keepBytes` or `capabilities[3]`; `nil` for the whole file.
    public var key: String?
    public var problem: String

    public init(file: String, key: String?, problem: String) {
        self.file = file
        self.key = key
        self.problem = problem
    }

    public var description: String {
        "policy \(file): " + (key.map { "\($0): " } ?? "") + problem
    }
}
