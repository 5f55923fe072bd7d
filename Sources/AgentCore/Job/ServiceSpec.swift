import Images
import Sandbox

/// A sidecar container of a job (`services[]`, GitLab's keys): a database, a cache or an
/// HTTP stub the steps reach on 127.0.0.1 and by its aliases. Parsed from the untrusted job
/// file; its `name` is a request admission grants like the job's `image`.
public struct ServiceSpec: Sendable, Equatable {
    /// What the service runs on: the host's binaries, a root filesystem folder (a request,
    /// kept as written) or a container image.
    public var name: JobSpec.Image
    /// Names `/etc/hosts` resolves to 127.0.0.1 in every container of the job; the first
    /// is the service's own name in logs and status.json (`logs/service-<alias>.log`).
    public var aliases: [String]
    /// Overrides the image's `Entrypoint` (and then resets its `Cmd`, as Docker does).
    public var entrypoint: [String]?
    /// Overrides the image's `Cmd`.
    public var command: [String]?
    /// The service's own environment, over the image's `Env` and the job's `env`.
    public var variables: [String: String] = [:]
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0
    /// The entry named a `user`: the image's `User` applies only when it did not.
    public var userGiven = false
    /// What "ready" means; nil: the image's exposed ports, then its HEALTHCHECK, else none.
    public var healthcheck: ServiceHealthcheck?
    /// Poll bounds of every wait (also the fallbacks'), GitLab's 30 s by default.
    public var healthTimeout: Duration = .seconds(30)
    public var healthInterval: Duration = .milliseconds(250)
    /// A failed wait is a warning instead of failing the job.
    public var allowUnhealthy = false
    /// The job's secrets this service gets (and only it).
    public var secrets: [ServiceSecret] = []

    public init(name: JobSpec.Image, aliases: [String]) {
        self.name = name
        self.aliases = aliases
    }

    /// The first alias: how logs, status and messages name the service.
    public var alias: String { aliases[0] }

    /// The name as the job wrote it, for messages: `postgres:15`, `host`, `rootfs DIR`.
    public var displayName: String {
        switch name {
        case .host: return "host"
        case .rootfs(let p): return "rootfs \(p)"
        case .image(let source): return source.description
        }
    }

    /// At most this many services per job (each is a container for the job's whole life).
    public static let maximumCount = 8
    /// An alias is a DNS name of at most this many bytes.
    public static let maximumAliasBytes = 63
    /// At most this many aliases per service.
    public static let maximumAliases = 8
    /// The default stop grace: SIGTERM, then SIGKILL after this long (`services_stop_grace`).
    public static let defaultStopGrace: Duration = .seconds(10)
    /// `services_stop_grace` is at most this long.
    public static let maximumStopGrace: Duration = .seconds(300)
    /// `healthcheck.interval` is at least this long (each poll starts a process).
    public static let minimumHealthInterval: Duration = .milliseconds(50)
}

/// A service's health check (`healthcheck`): a TCP connect to 127.0.0.1:PORT inside the
/// job's network, or a command run in a container of its own on the service's root.
public enum ServiceHealthcheck: Sendable, Equatable {
    case tcp(UInt16)
    case cmd([String])
}

/// A secret a service gets: as the environment variable `env`, or as a file at `target`
/// (default `/run/secrets/<id>`) on a tmpfs private to the service's container.
public struct ServiceSecret: Sendable, Equatable {
    public var id: String
    public var env: String?
    public var target: String?
    public var mode: UInt32 = 0o400
    public init(id: String, env: String? = nil, target: String? = nil) {
        self.id = id
        self.env = env
        self.target = target
    }
}
