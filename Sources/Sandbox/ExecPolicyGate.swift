import AgentSupport
import FoundationEssentials
import Glibc
import SandboxPolicy

/// What `agent exec`'s security flags (`--cap-drop`, `--cap-add`, `--network`, `--seccomp`)
/// may ask for under the agent policy.
///
/// The policy is the ceiling for every container on the agent, ad-hoc ones included: the
/// flags start from the policy's capabilities and seccomp profile and may only narrow them.
/// A request outside the policy throws `Refusal` (the CLI exits 125); a value that is not
/// a valid flag value at all throws `ExecParsing.InvalidValue` (a usage error, exit 64).
public struct ExecPolicyGate: Sendable {
    public var policy: SandboxLimits
    /// Where the policy came from: its path, or `"built-in"` (as the agent core's policy resolver says).
    public var source: String

    public init(policy: SandboxLimits, source: String) {
        self.policy = policy
        self.source = source
    }

    /// A flag the agent policy does not allow. The message names the flag, its value, what
    /// the policy says, and the policy file and key to change:
    /// `--cap-add SYS_ADMIN: the agent policy does not allow CAP_SYS_ADMIN (policy /etc/agent.json: capabilities)`.
    public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        public var flag: String
        public var value: String
        public var problem: String
        /// Where the policy came from (a path or `"built-in"`).
        public var source: String
        /// The policy's JSON key that decides (`capabilities`, `allowHostNetwork`, `seccompProfile`).
        public var key: String

        public var description: String {
            let origin = source == "built-in" ? "built-in policy" : "policy \(source)"
            return "\(flag) \(value): \(problem) (\(origin): \(key))"
        }
    }

    /// The container's capabilities: the policy's, minus `--cap-drop` (names or `ALL`), plus
    /// `--cap-add` (`ALL` means all the policy allows). Adding one outside the policy is refused.
    public func capabilities(drop: [String], add: [String]) throws -> CapabilitySet {
        // Each name is checked on its own first, so the error names the flag and the value.
        for name in drop where !Self.isAll(name) {
            _ = try Self.number(name, flag: "--cap-drop")
        }
        for name in add where !Self.isAll(name) {
            let number = try Self.number(name, flag: "--cap-add")
            guard policy.capabilities.contains(number: number) else {
                throw Refusal(flag: "--cap-add", value: name,
                              problem: "the agent policy does not allow \(CapabilitySet.name(of: number))",
                              source: source, key: "capabilities")
            }
        }
        return try CapabilitySet.narrowing(policy.capabilities, drop: drop, add: add)
    }

    /// `--network none|host|outbound`; `host` only when the policy's `allowHostNetwork` is
    /// true, `outbound` only when its `allowOutboundNetwork` is.
    public func network(_ value: String) throws -> ContainerConfiguration.Network {
        guard let network = ContainerConfiguration.Network(rawValue: value) else {
            throw ExecParsing.InvalidValue("--network must be none, host or outbound, not '\(value)'")
        }
        if network == .host && !policy.allowHostNetwork {
            throw Refusal(flag: "--network", value: value, problem: "the agent policy does not allow the host network",
                          source: source, key: "allowHostNetwork")
        }
        if network == .outbound && !policy.allowOutboundNetwork {
            throw Refusal(flag: "--network", value: value, problem: "the agent policy does not allow the outbound network",
                          source: source, key: "allowOutboundNetwork")
        }
        return network
    }

    /// The outbound network the policy's `network` object describes.
    public var outbound: OutboundNetwork { Self.outbound(policy.network) }

    /// `OutboundNetwork` from the policy's settings (checked when the policy loaded).
    public static func outbound(_ s: SandboxLimits.OutboundSettings) -> OutboundNetwork {
        OutboundNetwork(stack: .slirp4netns, deniedCIDRs: s.deniedCIDRs.compactMap(CIDR.init),
                        allowedHostPorts: s.allowedHostPorts, mtu: Int(s.mtu))
    }

    /// `--seccomp default|unconfined|FILE`.
    ///
    /// `default` is the policy's profile (with its netlink and raw-socket settings).
    /// `unconfined` needs a policy whose `seccompProfile` is `"unconfined"`. A profile file
    /// replaces the policy's filter, so it is allowed only when the policy has none
    /// (`"unconfined"`: any filter narrows that) or names the same file. Policy errors (a
    /// profile file that does not load) throw `PolicyError` naming the policy and the key.
    public func seccomp(_ value: String) throws -> SeccompPolicy {
        switch value {
        case "default":
            return try policySeccomp()
        case "unconfined":
            guard policy.seccompProfile == .unconfined else {
                throw Refusal(flag: "--seccomp", value: value,
                              problem: "the agent policy's seccompProfile is \(policyProfileName); agent exec may not remove it",
                              source: source, key: "seccompProfile")
            }
            return .unconfined
        default:
            switch policy.seccompProfile {
            case .unconfined:
                guard let text = try? String(contentsOfFile: value, encoding: .utf8) else {
                    throw ExecParsing.InvalidValue("--seccomp: cannot read profile file \(value)")
                }
                return .profile(json: text)
            case .file(let path) where Self.sameFile(path, value):
                return try policySeccomp()
            case .file, .projectDefault:
                throw Refusal(flag: "--seccomp", value: value,
                              problem: "the agent policy's seccompProfile is \(policyProfileName); agent exec may not replace it",
                              source: source, key: "seccompProfile")
            }
        }
    }

    /// The policy's own filter. `SandboxLimits.seccompPolicy()` names only the profile file
    /// when it does not load; the error here names the policy file too, which is what the
    /// user must fix or stop pointing `$AGENT_POLICY` at.
    func policySeccomp() throws -> SeccompPolicy {
        do {
            return try policy.seccompPolicy()
        } catch let error as PolicyError {
            throw PolicyError(file: source == "built-in" ? "(built-in policy)" : source, key: "seccompProfile", problem: error.problem)
        }
    }

    /// The policy's `seccompProfile` as written in JSON, quoted.
    var policyProfileName: String {
        switch policy.seccompProfile {
        case .projectDefault: "\"default\""
        case .unconfined: "\"unconfined\""
        case .file(let path): "\"\(path)\""
        }
    }

    /// Whether two paths name the same file once symlinks and `..` are resolved (a profile
    /// the agent cannot resolve is never "the same").
    static func sameFile(_ a: String, _ b: String) -> Bool {
        guard let ra = realpath(a, nil) else { return false }
        defer { free(ra) }
        guard let rb = realpath(b, nil) else { return false }
        defer { free(rb) }
        return strcmp(ra, rb) == 0
    }

    static func number(_ name: String, flag: String) throws -> Int {
        do {
            return try CapabilitySet.number(of: name)
        } catch {
            throw ExecParsing.InvalidValue("\(flag) \(name): unknown capability")
        }
    }

    static func isAll(_ name: String) -> Bool {
        name.trimmingWhitespace().uppercased() == "ALL"
    }
}
