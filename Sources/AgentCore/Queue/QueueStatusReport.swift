import AgentSupport
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// `agent queue status JOBS_DIR`: how many jobs are in each folder, and who runs what.
public struct QueueStatusReport: Codable, Sendable, Equatable {
    public struct Counts: Codable, Sendable, Equatable {
        public var incoming = 0
        public var running = 0
        public var done = 0
        public var failed = 0
        /// Pending requests in cancel/.
        public var cancelRequests = 0
    }

    public struct RunningJob: Codable, Sendable, Equatable {
        public var id: String
        /// Nil while the lease is not written yet (a claim in progress) or after a crash.
        public var agent: String?
        public var host: String?
        public var pid: Int32?
        public var attempt: Int?
        public var started: Date?
        public var heartbeat: Date?
        /// Seconds since the claim.
        public var ageSeconds: Double?
    }

    public var jobsDirectory: String
    public var counts = Counts()
    public var running: [RunningJob] = []

    /// Reads the folders as they are now (each folder is read once, so under load the
    /// counts can be a moment apart).
    public init(layout: QueueLayout, now: Date = Date()) {
        jobsDirectory = layout.root
        let store = QueueStore(layout: layout, agentID: "", host: "")
        counts.incoming = store.queuedJobs().count
        let runningIDs = store.runningJobs()
        counts.running = runningIDs.count
        if let f = try? store.folders() {
            counts.done = Self.results(in: f.done)
            counts.failed = Self.results(in: f.failed)
            counts.cancelRequests = QueueFS.list(f.cancel).filter { !$0.hasPrefix(".") }.count
        }
        for id in runningIDs {
            let lease = store.readLease(id)
            running.append(RunningJob(id: id, agent: lease?.agent, host: lease?.host, pid: lease?.pid,
                                      attempt: lease?.attempt, started: lease?.started, heartbeat: lease?.heartbeat,
                                      ageSeconds: lease.map { (now.timeIntervalSince($0.started) * 10).rounded() / 10 }))
        }
    }

    private static func results(in dir: Int32) -> Int {
        QueueFS.list(dir).filter { !$0.hasPrefix(".") && QueueFS.isDirectory(dir, $0) }.count
    }

    /// The `--json` form.
    public func json() -> String {
        String(decoding: QueueJSON.encode(self), as: UTF8.self)
    }

    /// The human form: one line of counts, then one line per running job.
    public func text() -> String {
        var lines = ["incoming \(counts.incoming)  running \(counts.running)  done \(counts.done)  failed \(counts.failed)"
                     + (counts.cancelRequests > 0 ? "  cancel-requests \(counts.cancelRequests)" : "")]
        if !running.isEmpty {
            lines.append("")
            lines.append("RUNNING  AGENT  ATTEMPT  AGE")
            for job in running {
                let age = job.ageSeconds.map { Self.age($0) } ?? "-"
                lines.append("\(job.id)  \(job.agent ?? "-")  \(job.attempt.map(String.init) ?? "-")  \(age)")
            }
        }
        return lines.joined(separator: "\n")
    }

    static func age(_ seconds: Double) -> String {
        let s = Int(seconds)
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m\(s % 60)s" }
        return "\(s / 3600)h\((s % 3600) / 60)m"
    }
}
