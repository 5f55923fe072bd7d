/// STUB (replaced by the policy work): the agent policy.
public struct AgentPolicy: Sendable, Equatable {
    public var capabilities: CapabilitySet = .dockerDefault
    public var seccomp: SeccompPolicy = .projectDefault
    public var allowHostNetwork = false
    public var allowedBindSources: [String] = []
    public var artifactBudgetBytes: UInt64 = 1 << 30
    public var maxSecretBytes = 500 * 1024
    public init() {}
    public static let `default` = AgentPolicy()
}
