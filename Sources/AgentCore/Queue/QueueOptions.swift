import AgentSupport
import FoundationEssentials
import Glibc

/// How `agent watch` runs a queue directory. Defaults match the CLI's.
public struct WatchOptions: Sendable, Equatable {
    /// Jobs run at once by this agent.
    public var concurrency: Int = 1
    /// Full rescans of `incoming/` (and recovery, cancel checks) for file systems that do
    /// not deliver inotify events, such as NFS.
    public var rescanInterval: Duration = .seconds(2)
    /// A lease from another host whose heartbeat is older than this is taken as lost.
    public var leaseTimeout: Duration = .seconds(60)
    /// A job whose agent was lost this many times goes to `failed/` (`agent lost`).
    public var maxAttempts: Int = 3
    /// On SIGTERM/SIGINT, running jobs get this long to finish before they are cancelled
    /// and requeued.
    public var grace: Duration = .seconds(600)
    /// This agent's name in leases and logs.
    public var agentID: String
    /// The host name in leases and results, for people.
    public var host: String
    /// `HostIdentity` (machine id and boot id) in leases: leases with this agent's are
    /// checked by their flock, all others by their heartbeat.
    public var hostID: String

    public init(agentID: String? = nil, host: String? = nil, hostID: String? = nil) {
        let h = host ?? QueueFS.hostName
        self.host = h
        self.hostID = hostID ?? HostIdentity.current
        self.agentID = agentID ?? "\(h)-\(getpid())"
    }

    /// How often a running job's lease is rewritten: often enough that a healthy agent is
    /// never mistaken for a lost one.
    public var heartbeatInterval: Duration {
        min(.seconds(5), leaseTimeout / 4)
    }

    /// Checks the values a user can set; the error names the option.
    public func validate() throws {
        if concurrency < 1 {
            throw QueueError.invalidOption(name: "--concurrency", value: "\(concurrency)", reason: "must be at least 1")
        }
        if maxAttempts < 1 {
            throw QueueError.invalidOption(name: "--max-attempts", value: "\(maxAttempts)", reason: "must be at least 1")
        }
        if rescanInterval <= .zero {
            throw QueueError.invalidOption(name: "--rescan-interval", value: "\(rescanInterval)", reason: "must be positive")
        }
        if leaseTimeout < .seconds(1) {
            throw QueueError.invalidOption(name: "--lease-timeout", value: "\(leaseTimeout)", reason: "must be at least 1s")
        }
        if grace < .zero {
            throw QueueError.invalidOption(name: "--grace", value: "\(grace)", reason: "must not be negative")
        }
        if agentID.isEmpty || agentID.contains("\n") {
            throw QueueError.invalidOption(name: "--agent-id", value: agentID, reason: "must be a non-empty single line")
        }
    }

    /// Parses `500ms`, `2s`, `10m`, `1h` or a bare number of seconds (`1.5`).
    public static func parseDuration(_ text: String, option: String) throws -> Duration {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        var number = text
        var scale = 1.0
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            number = String(text.dropLast(suffix.count))
            scale = factor
            break
        }
        guard let value = Double(number), value.isFinite, value >= 0 else {
            throw QueueError.invalidOption(name: option, value: text, reason: "expected a duration such as 500ms, 2s, 10m or 1h")
        }
        return .milliseconds(Int64((value * scale * 1000).rounded()))
    }
}


