import AgentSupport
import FoundationEssentials

/// One service in status.json (`services[]`).
///
/// `state`: `healthy` (its wait passed; it ran until the agent stopped it), `unhealthy`
/// (its wait failed or it never got one started), `exited` (it ended on its own before the
/// agent stopped it: a crash), `stopped` (nothing to wait for; it ran until stopped).
public struct ServiceStatus: Codable, Sendable, Equatable {
    public var alias: String
    public var aliases: [String]
    /// The service's `name` as the job wrote it (`postgres:15`, `host`, `rootfs DIR`).
    public var name: String
    /// The manifest digest of an image service.
    public var imageDigest: String?
    public var state: String
    public var exitCode: Int32?
    public var signal: Int32?
    /// What readiness meant: `tcp 5432`, `cmd`, `exposed ports 5432, 6379`, `image healthcheck`, `none`.
    public var health: String
    public var waitedSeconds: Double?
    /// Why it is unhealthy or exited, or how it failed to start (redacted).
    public var reason: String?
    /// Relative path of its output in the results folder.
    public var log: String

    public init(alias: String, aliases: [String], name: String, state: String, health: String, log: String) {
        self.alias = alias
        self.aliases = aliases
        self.name = name
        self.state = state
        self.health = health
        self.log = log
    }

    enum CodingKeys: String, CodingKey {
        case alias, aliases, name, imageDigest = "image_digest", state, exitCode = "exit_code", signal, health
        case waitedSeconds = "waited_seconds", reason, log
    }

    /// The status with its free text (names, aliases, reason, log path) passed through `redact`.
    public func redacted(by redact: (String) -> String) -> ServiceStatus {
        var out = self
        out.alias = redact(alias)
        out.aliases = aliases.map(redact)
        out.name = redact(name)
        out.health = redact(health)
        out.reason = reason.map(redact)
        out.log = redact(log)
        return out
    }
}
