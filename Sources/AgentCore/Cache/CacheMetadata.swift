import AgentSupport
import FoundationEssentials
import Glibc

/// `meta.json` of one cache, replaced atomically on every change.
public struct CacheMetadata: Codable, Sendable, Equatable {
    public var scope: String
    public var id: String
    public var created: Date
    public var lastUsed: Date
    /// Mode of the cache directory when it was created.
    public var mode: UInt32
    /// Owner inside the container the cache was created for (container ids; the runner maps them).
    public var uid: UInt32
    public var gid: UInt32
    /// Bytes on disk at `measured` (all instances), if measured.
    public var sizeBytes: UInt64?
    public var measured: Date?
}

/// One cache as `agent cache ls` shows it.
public struct CacheInfo: Codable, Sendable, Equatable {
    public var scope: String
    public var id: String
    public var sizeBytes: UInt64
    public var created: Date
    public var lastUsed: Date
    public var inUse: Bool
    /// Number of instances (more than one after concurrent `sharing=private` use).
    public var instances: Int
    /// Host path of the cache entry (for debugging; never shown to containers).
    public var path: String
}

/// What status.json records about a cache a step used.
public struct CacheUse: Codable, Sendable, Equatable {
    public var id: String
    public var scope: String
    public var sharing: String
    /// The cache directory did not exist before this step.
    public var new: Bool
    /// Seconds spent waiting for a `locked` cache (0 when it was free).
    public var waitSeconds: Double
    public var target: String
    public var readOnly: Bool

    public init(id: String, scope: String, sharing: String, new: Bool, waitSeconds: Double, target: String, readOnly: Bool) {
        self.id = id
        self.scope = scope
        self.sharing = sharing
        self.new = new
        self.waitSeconds = waitSeconds
        self.target = target
        self.readOnly = readOnly
    }

    /// snake_case, like the rest of status.json.
    enum CodingKeys: String, CodingKey {
        case id, scope, sharing, new, target
        case waitSeconds = "wait_seconds"
        case readOnly = "read_only"
    }
}

/// Refused because a cache or volume is in use (exit code 1 in the CLI).
public struct InUseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var what: String
    public init(what: String) { self.what = what }
    public var description: String { "\(what) is in use" }
}

/// Bad input to the cache or volume store (exit code 2 in the CLI): names what was wrong.
public struct CacheInputError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
