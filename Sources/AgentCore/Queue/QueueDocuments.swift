import AgentSupport
import FoundationEssentials
import Glibc

/// Who holds a running job: `running/<id>.lease`, rewritten at every heartbeat.
public struct Lease: Codable, Sendable, Equatable {
    /// The queue id (file name without `.json`).
    public var id: String
    public var agent: String
    /// The host name, for people; liveness is judged by `hostID`.
    public var host: String
    /// `HostIdentity` of the agent's host (machine id and boot id). A lease whose hostID is
    /// this agent's is judged by its flock; any other (or none) by its heartbeat.
    public var hostID: String?
    public var pid: Int32
    /// Names this claim: its work folder is `.work/<id>.<token>`, cancel requests carry it.
    public var token: String
    /// 1 for the first run; raised each time the job is requeued after its agent was lost.
    public var attempt: Int
    public var started: Date
    public var heartbeat: Date

    public init(id: String, agent: String, host: String, hostID: String?, pid: Int32, token: String, attempt: Int,
                started: Date, heartbeat: Date) {
        self.id = id
        self.agent = agent
        self.host = host
        self.hostID = hostID
        self.pid = pid
        self.token = token
        self.attempt = attempt
        self.started = started
        self.heartbeat = heartbeat
    }
}

/// A request to cancel a running job: `cancel/<id>`. `token` names the claim it is meant
/// for, so a late request never cancels a later run of the same id.
public struct CancelRequest: Codable, Sendable, Equatable {
    public var id: String
    public var token: String?
    public var requested: Date
}

/// `queue.json` in every result folder: how the queue ran the job.
public struct QueueRecord: Codable, Sendable, Equatable {
    public var id: String
    public var agent: String
    public var host: String
    public var attempt: Int
    public var claimed: Date?
    public var finished: Date
    /// The runner's exit code (nil when the job never reached the runner).
    public var exitCode: Int32?
    /// `done` or `failed`.
    public var outcome: String
}

/// The status.json the queue writes itself when the runner could not: a file that is not
/// JSON, a job cancelled while queued, an agent lost too often, a runner that wrote nothing.
/// Same keys as the runner's status.json where they overlap (`id`, `state`, `exitCode`).
public struct QueueStatusDocument: Codable, Sendable, Equatable {
    public var version: Int = 1
    public var id: String
    public var state: JobState
    /// A short machine-readable reason: `invalid job`, `cancelled`, `agent lost`, `agent error`.
    public var reason: String
    /// The human explanation (for an invalid job, the validation message).
    public var message: String
    public var exitCode: Int32
    public var finished: Date
    /// For an entry filed under a derived name (its own was too long or not UTF-8): the
    /// original file name, with every byte that is not printable ASCII as `\xNN`.
    public var originalName: String?

    public init(id: String, state: JobState, reason: String, message: String, exitCode: Int32, finished: Date,
                originalName: String? = nil) {
        self.id = id
        self.state = state
        self.reason = reason
        self.message = message
        self.exitCode = exitCode
        self.finished = finished
        self.originalName = originalName
    }
}

/// The JSON coders of every queue document: ISO-8601 dates with milliseconds, sorted keys.
enum QueueJSON {
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .custom { date, enc in
            var c = enc.singleValueContainer()
            try c.encode(format(date))
        }
        return e
    }()

    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .custom { dec in
            let c = try dec.singleValueContainer()
            let s = try c.decode(String.self)
            guard let date = parse(s) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "not an ISO-8601 date: \(s)")
            }
            return date
        }
        return d
    }()

    static func format(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    static func parse(_ s: String) -> Date? {
        if let d = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(s) { return d }
        return try? Date.ISO8601FormatStyle().parse(s)
    }

    static func encode<T: Encodable>(_ value: T) -> Data {
        // Encoding these plain structs cannot fail.
        (try? encoder.encode(value)) ?? Data("{}".utf8)
    }

    /// Decodes `dir/name`; nil when it is missing, not a regular file, larger than 1 MiB
    /// or not the document (the queue treats those as absent).
    static func decode<T: Decodable>(_ type: T.Type, _ dir: Int32, _ name: String) -> T? {
        guard let data = QueueFS.readIfPresent(dir, name, limit: 1 << 20) else { return nil }
        return try? decoder.decode(type, from: data)
    }
}
