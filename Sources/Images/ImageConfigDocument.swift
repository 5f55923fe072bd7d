import AgentSupport
import FoundationEssentials
import Glibc

/// One `history` entry of an image config: what made a layer (or an empty one).
public struct HistoryEntry: Sendable, Equatable {
    /// RFC 3339 time (see `ImageConfigDocument.timestamp`).
    public var created: String?
    public var createdBy: String?
    public var author: String?
    public var comment: String?
    /// True for an instruction that changed only the config (ENV, CMD, ...) or no file.
    public var emptyLayer: Bool

    public init(created: String? = nil, createdBy: String? = nil, author: String? = nil,
                comment: String? = nil, emptyLayer: Bool = false) {
        self.created = created; self.createdBy = createdBy; self.author = author
        self.comment = comment; self.emptyLayer = emptyLayer
    }
}

/// Docker's `Healthcheck` (a docker extension of the OCI config). Durations in nanoseconds.
public struct Healthcheck: Sendable, Equatable {
    /// `["NONE"]`, `["CMD", args...]` or `["CMD-SHELL", command]`.
    public var test: [String]
    public var interval: Int64?
    public var timeout: Int64?
    public var startPeriod: Int64?
    public var startInterval: Int64?
    public var retries: Int64?

    public init(test: [String], interval: Int64? = nil, timeout: Int64? = nil, startPeriod: Int64? = nil,
                startInterval: Int64? = nil, retries: Int64? = nil) {
        self.test = test; self.interval = interval; self.timeout = timeout
        self.startPeriod = startPeriod; self.startInterval = startInterval; self.retries = retries
    }
}

/// The whole image config (OCI image-spec config.md plus Docker's extensions Shell,
/// Healthcheck, OnBuild, ArgsEscaped): what a build writes and a run reads. Unknown keys
/// (top level and inside `config`) are kept through parse and serialise. The serialised
/// form is canonical: sorted keys, no insignificant whitespace, empty optional fields
/// left out, so the same content always has the same digest.
public struct ImageConfigDocument: Sendable, Equatable {
    public var created: String?
    public var author: String?
    public var architecture: String
    public var os: String
    public var variant: String?

    // `config`
    public var user: String?
    /// `"80/tcp"`, `"53/udp"`: kept sorted and unique when serialised.
    public var exposedPorts: [String] = []
    public var env: [String] = []
    /// Nil and empty differ (`ENTRYPOINT []` resets the base's).
    public var entrypoint: [String]?
    public var cmd: [String]?
    /// Kept sorted and unique when serialised.
    public var volumes: [String] = []
    public var workingDir: String?
    public var labels: [String: String] = [:]
    public var stopSignal: String?
    public var shell: [String]?
    public var healthcheck: Healthcheck?
    public var onBuild: [String]?
    public var argsEscaped: Bool?

    /// `rootfs.diff_ids`, bottom layer first.
    public var diffIDs: [Digest] = []
    public var history: [HistoryEntry] = []

    /// Keys this type does not model, kept as they were.
    package var unknown: [String: JSONValue] = [:]
    package var unknownConfig: [String: JSONValue] = [:]

    /// A config for a `FROM scratch` image of this machine's platform.
    public init(architecture: String = hostArchitecture, os: String = "linux", variant: String? = nil) {
        self.architecture = architecture; self.os = os; self.variant = variant
    }

    /// The value of `NAME` in `env` (the last `NAME=` entry).
    public func environment(_ name: String) -> String? {
        env.last { $0.hasPrefix(name + "=") }.map { String($0.dropFirst(name.utf8.count + 1)) }
    }

    /// Sets `NAME=value` in `env`, replacing an existing entry in place (Docker's order).
    public mutating func setEnvironment(_ name: String, _ value: String) {
        if let i = env.firstIndex(where: { $0.hasPrefix(name + "=") || $0 == name }) {
            env[i] = name + "=" + value
        } else {
            env.append(name + "=" + value)
        }
    }

    /// RFC 3339 UTC time of `seconds` since the epoch (`2026-12-02T00:00:00Z`), as
    /// `created` fields write it.
    public static func timestamp(epochSeconds seconds: Int64) -> String {
        var t = time_t(seconds), tm = Glibc.tm()
        gmtime_r(&t, &tm)
        func d(_ v: Int32, _ w: Int) -> String { let s = String(v); return String(repeating: "0", count: max(0, w - s.count)) + s }
        return "\(d(tm.tm_year + 1900, 4))-\(d(tm.tm_mon + 1, 2))-\(d(tm.tm_mday, 2))T\(d(tm.tm_hour, 2)):\(d(tm.tm_min, 2)):\(d(tm.tm_sec, 2))Z"
    }

    /// The run-time view the container start uses.
    public var runtimeConfig: ImageConfig {
        var c = ImageConfig()
        c.env = env
        c.user = user.flatMap { $0.isEmpty ? nil : $0 }
        c.workingDir = workingDir.flatMap { $0.isEmpty ? nil : $0 }
        c.entrypoint = entrypoint ?? []
        c.cmd = cmd ?? []
        c.diffIDs = diffIDs
        c.os = os
        c.architecture = architecture
        return c
    }
}
