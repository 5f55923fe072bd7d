import AgentSupport
import FoundationEssentials

/// A job step `{"name": "image", "build": {...}}`: `agent build` as a step, with the job's
/// secrets and caches under the same admission rules. Every path is a request: the
/// context is opened beneath the job's workspace by descriptor, the Dockerfile beneath the
/// context; a push goes only to a registry the policy allows; secrets are ids the
/// operator provides values for.
public struct BuildStepSpec: Sendable, Equatable {
    /// The context, relative to the workspace (default `.`).
    public var context: String = "."
    /// The Dockerfile, relative to the context (default `Dockerfile`).
    public var file: String = "Dockerfile"
    public var tags: [String] = []
    public var push = false
    public var target: String?
    public var args: [String: String] = [:]
    /// Secret ids the build may mount (values: the operator's, as for every step).
    public var secrets: [String] = []
    public var noCache = false

    public init() {}
}

