import AgentSupport
import FoundationEssentials
import Glibc
import SandboxPolicy

/// What jobs on this agent may do at most: the sandbox limits (capabilities, seccomp
/// profile, host network: `SandboxLimits`, which the sandbox module owns), and the job-level
/// grants (which host paths jobs may name, budgets, operator secrets). Jobs and the CLI may
/// only narrow it.
///
/// Read from JSON (`policies/policy.json` is the built-in default). Every key is optional;
/// a missing key keeps the default, an unknown key or a wrong type is an error naming the
/// file and the key. Where the CLI gets it: see `resolve(commandLine:environment:)`.
public struct AgentPolicy: Sendable, Equatable {
    /// Which seccomp profile containers get (see `SandboxLimits`).
    public typealias SeccompProfileSetting = SandboxLimits.SeccompProfileSetting

    /// Cache eviction: keep at most `keepBytes`, and at most `keepPercentOfDisk` percent of
    /// the disk holding the cache, whichever is smaller.
    public struct CacheLimits: Sendable, Equatable {
        public var keepBytes: UInt64 = 10_000_000_000
        public var keepPercentOfDisk: Double = 20
        public init(keepBytes: UInt64 = 10_000_000_000, keepPercentOfDisk: Double = 20) {
            self.keepBytes = keepBytes
            self.keepPercentOfDisk = keepPercentOfDisk
        }
    }

    /// What any container may have at most.
    public var sandbox = SandboxLimits()
    /// Sizes of the tmpfs a step gets (`/tmp`, `/root`, `/dev/shm`, and a job's `tmpfs` and
    /// `type=tmpfs` mounts): `defaultSizeBytes` where the job names no size, and no job
    /// tmpfs may be larger than `maxSizeBytes` (refused at admission). Without a size a
    /// tmpfs may grow to half of RAM, which one step could fill for every job on the host.
    public struct TmpfsLimits: Sendable, Equatable {
        public var defaultSizeBytes: UInt64 = 256 << 20
        public var maxSizeBytes: UInt64 = 1 << 30
        public init(defaultSizeBytes: UInt64 = 256 << 20, maxSizeBytes: UInt64 = 1 << 30) {
            self.defaultSizeBytes = defaultSizeBytes
            self.maxSizeBytes = maxSizeBytes
        }
    }

    /// Limits of `agent cache import`: at most `importMaxEntries` archive entries; the
    /// bytes are bounded by the cache budget (`CacheLimits`), so a small archive cannot
    /// expand past what GC would keep.
    public struct CacheImportLimits: Sendable, Equatable {
        public var maxEntries: UInt64 = 1_000_000
        public init(maxEntries: UInt64 = 1_000_000) { self.maxEntries = maxEntries }
    }

    /// Per-step caps on JUnit reports: reports are untrusted input the agent parses in its
    /// own memory, so their number and bytes are bounded whatever the job writes.
    public struct ReportLimits: Sendable, Equatable {
        /// Report files read per step at most; more matches are skipped with a warning.
        public var maxFiles: UInt64 = 1000
        /// Bytes of reports read per step at most (hard links to one file count once).
        public var maxTotalBytes: UInt64 = 256 << 20
        /// Largest single report; a larger one is a MalformedReport case.
        public var maxFileBytes: UInt64 = 64 << 20
        /// Test cases kept per step (in status.json's totals and junit.xml); further cases
        /// are counted in the totals only. A case costs the agent several times its XML.
        public var maxCases: UInt64 = 100_000
        public init(maxFiles: UInt64 = 1000, maxTotalBytes: UInt64 = 256 << 20, maxFileBytes: UInt64 = 64 << 20,
                    maxCases: UInt64 = 100_000) {
            self.maxFiles = maxFiles
            self.maxTotalBytes = maxTotalBytes
            self.maxFileBytes = maxFileBytes
            self.maxCases = maxCases
        }
    }

    /// Capabilities a container may keep (default: Docker's 14).
    public var capabilities: CapabilitySet {
        get { sandbox.capabilities }
        set { sandbox.capabilities = newValue }
    }
    public var seccompProfile: SeccompProfileSetting {
        get { sandbox.seccompProfile }
        set { sandbox.seccompProfile = newValue }
    }
    /// Whether steps may use `network: host`.
    public var allowHostNetwork: Bool {
        get { sandbox.allowHostNetwork }
        set { sandbox.allowHostNetwork = newValue }
    }
    /// Absolute host path prefixes steps may bind (besides the job's own workspace).
    public var allowedBindSources: [String] = []
    /// Absolute host folders beneath which a job's `workspace` may be (besides the job
    /// file's own folder).
    public var workspaceRoots: [String] = []
    /// Absolute host folders beneath which a job's `image.rootfs` may be (besides the job
    /// file's own folder).
    public var rootfsRoots: [String] = []
    /// Whether the default profile allows netlink sockets.
    public var allowNetlink: Bool {
        get { sandbox.allowNetlink }
        set { sandbox.allowNetlink = newValue }
    }
    /// Whether the default profile allows raw IP and packet sockets.
    public var allowRawSockets: Bool {
        get { sandbox.allowRawSockets }
        set { sandbox.allowRawSockets = newValue }
    }
    /// Total bytes of artifacts one job may keep (default 1 GiB).
    public var artifactBudgetBytes: UInt64 = 1 << 30
    public var cache = CacheLimits()
    /// `cache.importMaxEntries`.
    public var cacheImport = CacheImportLimits()
    /// `tmpfs.defaultSizeBytes`, `tmpfs.maxSizeBytes`.
    public var tmpfs = TmpfsLimits()
    /// Processes (RLIMIT_NPROC, or a cgroup's `pids.max`) one step's container may have at
    /// once; a job's `resources.pids` may only lower it (`"defaultPids"`, default 4096).
    public var defaultPids: UInt64 = 4096
    /// Bytes that must stay free on the state folder's filesystem while a job step or a
    /// build's RUN writes there (its workspace and root layers, a RUN's upper folder): a
    /// container that brings the free space below it is killed, and its step or RUN fails
    /// naming the key (`"minFreeDiskBytes"`, default 1 GiB; 0 turns the guard off).
    public var minFreeDiskBytes: UInt64 = 1 << 30
    /// What a test step's JUnit reports may cost the agent (`"reports"` in the policy file).
    public var reports = ReportLimits()
    /// Largest secret a job may mount (default 500 KiB).
    public var maxSecretBytes: UInt64 = 500 * 1024
    /// Secret values the operator provides to jobs, by id (`"secrets"` in the policy file).
    /// A job only names the ids it uses; it never says where a value comes from.
    public var secrets: [String: Secret] = [:]
    /// Which container images jobs and `agent exec --image` may use (`"images"`).
    public var images = ImagePolicy()

    /// The operator's image rules. A registry entry is a host (`ghcr.io`, any port) or a
    /// `host:port`; `docker.io` is Docker Hub.
    public struct ImagePolicy: Sendable, Equatable {
        /// Registries images may come from. Default: none (a job naming an image is refused).
        public var allowedRegistries: [String] = []
        /// Registries reached over plain HTTP; loopback ones always are (as Docker does).
        public var insecureRegistries: [String] = []
        /// When set, the only references a job may name (normalised: `docker.io/library/alpine:3`).
        public var allowedImages: [String]? = nil
        /// The image store's size budget in bytes (blobs plus unpacked snapshots): after a
        /// pull or import grows it past this, least recently used images are evicted.
        public var storeMaxBytes: UInt64 = 20_000_000_000
        /// Folders beneath which a job's local image sources (`oci:DIR`, `oci-archive:FILE`,
        /// `docker-archive:FILE`) may lie; relative sources are beneath the job file's folder.
        public var localRoots: [String] = []
        public init() {}
    }

    public init() {}

    /// One operator-provided secret of the policy: where its value is read from and, when
    /// `scopes` is set, the only cache scopes whose jobs get it (a deploy token for trusted
    /// jobs only, say, while forks run in scope `forks`).
    public struct Secret: Sendable, Equatable {
        /// Where the value comes from, on the agent's side.
        public enum Source: Sendable, Equatable {
            /// A file; a relative path in the policy file resolves against its folder when loaded.
            case file(String)
            /// A variable of the agent's own environment.
            case env(String)
        }
        public var source: Source
        /// The cache scopes whose jobs get this secret; nil: every scope.
        public var scopes: [String]?

        public init(source: Source, scopes: [String]? = nil) {
            self.source = source
            self.scopes = scopes
        }

        /// Whether a job running in cache scope `scope` may get this secret.
        public func isProvided(toScope scope: String) -> Bool {
            scopes.map { $0.contains(scope) } ?? true
        }
    }

    /// The built-in policy (`policies/policy.json`, embedded in the binary).
    public static let `default`: AgentPolicy = {
        do {
            return try AgentPolicy(jsonData: Data(DefaultPolicy.text.utf8), file: "(built-in policy)", baseDirectory: "/")
        } catch {
            // The embedded text is tested to load; failing here is a build defect.
            fatalError("the built-in agent policy does not load: \(error)")
        }
    }()

    /// Reads a policy file. Errors name the file and the JSON key.
    public static func load(path: String) throws -> AgentPolicy {
        let data: Data
        switch readPolicyFile(path) {
        case .success(let bytes): data = bytes
        case .failure(let error): throw PolicyError(file: path, key: nil, problem: "cannot read the file (\(error))")
        }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        return try AgentPolicy(jsonData: data, file: path, baseDirectory: directory)
    }

    /// Where the CLI's policy comes from, in this order: `--policy FILE` (`commandLine`),
    /// else the file named by `$AGENT_POLICY`, else the built-in default.
    /// Returns the policy and where it came from (the path, or `"built-in"`).
    public static func resolve(commandLine: String?, environment: [String: String]) throws -> (policy: AgentPolicy, source: String) {
        if let path = commandLine, !path.isEmpty { return (try load(path: path), path) }
        if let path = environment["AGENT_POLICY"], !path.isEmpty { return (try load(path: path), path) }
        // The built-in policy's value without parsing its text (a JSON parse and the generic
        // metadata it instantiates were ~3% of an `agent exec`'s CPU time): AgentPolicyTests
        // checks that the embedded policies/policy.json parses to exactly `AgentPolicy()`.
        return (AgentPolicy(), "built-in")
    }

    /// The seccomp policy containers get under this agent policy (`SandboxLimits`).
    public func seccompPolicy() throws -> SeccompPolicy { try sandbox.seccompPolicy() }

    /// The capabilities a container gets for `--cap-drop`/`--cap-add` style requests.
    public func capabilities(drop: [String], add: [String]) throws -> CapabilitySet {
        try sandbox.capabilities(drop: drop, add: add)
    }

    /// Whether a step may bind the host path `source`: it must be absolute and equal to or
    /// below one of `allowedBindSources`, compared by path components. Resolve symlinks
    /// (`realpath`) before asking, or a link could point anywhere.
    public func allowsBindSource(_ source: String) -> Bool {
        guard let path = Self.components(source) else { return false }
        return allowedBindSources.contains { prefix in
            guard let prefix = Self.components(prefix) else { return false }
            return path.starts(with: prefix)
        }
    }

    static func components(_ path: String) -> [Substring]? {
        guard path.hasPrefix("/") else { return nil }
        let parts = path.split(separator: "/").filter { $0 != "." }
        return parts.contains("..") ? nil : parts
    }

}
