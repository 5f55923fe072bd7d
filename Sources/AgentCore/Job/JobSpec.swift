import Images
import Sandbox

/// A parsed, validated job (format version 1). See `ci/schema/job.schema.json`.
///
/// This file is the shared model: the parser (`JobParser.swift`) produces it; the
/// runner, caches, secrets, reports and queue consume it.
public struct JobSpec: Sendable, Equatable {
    public var version: Int = 1
    /// `[A-Za-z0-9._-]{1,128}`; defaults to the job file's base name.
    public var id: String
    public var image: Image = .host
    /// The checked-out source as the job wrote it (relative to the job file's folder, or
    /// absolute). A request: `Admission` opens it beneath a granted root.
    public var workspace: String?
    public var env: [String: String] = [:]
    public var network: ContainerConfiguration.Network = .none
    public var timeout: Duration = .seconds(3600)
    public var resources: Resources = Resources()
    /// Cache scope (namespace for cache mounts and volumes). The operator grants it
    /// (`--cache-scope`, default `default`); the runner sets it with `ScopeGrant` after
    /// checking `requestedCacheScope`. The parser leaves it at `default`.
    public var cacheScope: String = "default"
    /// The job file's `cache.scope`, if it has one. Untrusted: it is only ever compared
    /// with the granted scope (`ScopeGrant.grantedCacheScope`), never used as a scope.
    public var requestedCacheScope: String?
    /// The secret ids the job uses, by id. Values come from the operator only.
    public var secrets: [String: SecretSpec] = [:]
    public var artifacts: [ArtifactRule] = []
    public var steps: [StepSpec]
    /// Sidecar containers (`services`) that run next to the steps, in one network (a pod).
    public var services: [ServiceSpec] = []
    /// SIGTERM → SIGKILL grace when the services stop (`services_stop_grace`).
    public var servicesStopGrace: Duration = ServiceSpec.defaultStopGrace
    /// Absolute path of the job file's folder (relative paths in the job resolve against it).
    public var baseDirectory: String

    public init(id: String, steps: [StepSpec], baseDirectory: String) {
        self.id = id
        self.steps = steps
        self.baseDirectory = baseDirectory
    }

    public enum Image: Sendable, Equatable {
        case host
        /// A root filesystem folder as the job wrote it (a request, like `workspace`).
        case rootfs(String)
        /// A container image (`"image": "REF"`): a request, granted by admission from the
        /// policy's `images` rules; pulled and unpacked before the first step.
        case image(ImageSource)
    }

    /// When the image is fetched from its registry (`"pull"`).
    public var pull: PullPolicy = .ifNotPresent

    /// rlimits the job asks for; `memory` cannot be enforced without delegated cgroup v2
    /// and is reported as a warning instead.
    public struct Resources: Sendable, Equatable {
        public var pids: UInt64?
        public var nofile: UInt64?
        public var fsize: UInt64?
        public var memory: UInt64?
        public init() {}
    }
}

/// One step of a job.
public struct StepSpec: Sendable, Equatable {
    public enum Run: Sendable, Equatable {
        /// Run by `/bin/sh -c`.
        case shell(String)
        /// Executed directly.
        case argv([String])

        public var argv: [String] {
            switch self {
            case .shell(let s): return ["/bin/sh", "-c", s]
            case .argv(let a): return a
            }
        }

        /// How progress output shows the command.
        public var display: String {
            switch self {
            case .shell(let s): return s
            case .argv(let a): return a.joined(separator: " ")
            }
        }
    }

    public enum When: String, Sendable, Equatable, CaseIterable {
        case onSuccess = "on_success", onFailure = "on_failure", always
    }

    public enum Kind: String, Sendable, Equatable, CaseIterable {
        case build, test
    }

    public var name: String
    public var run: Run
    public var env: [String: String] = [:]
    public var workdir: String = "/workspace"
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0
    /// The step named its `user`: an image's `User` applies only to steps that did not.
    public var userGiven = false
    public var timeout: Duration?
    public var when: When = .onSuccess
    public var allowFailure: Bool = false
    public var type: Kind = .build
    public var mounts: [MountSpec] = []
    /// Test steps: extra tmpfs mounts (`"/workspace/.cache:size=16m"`), parsed.
    public var tmpfs: [MountSpec] = []
    /// Test steps: JUnit report globs (relative to /workspace, or absolute inside the container).
    public var reports: [String] = []
    /// Test steps: a throwaway writable layer over the workspace (`"workspace": "overlay"`).
    public var overlayWorkspace: Bool = false
    public var failOnReportFailures: Bool = true
    /// A build step (`"build": {...}`): an image built from a Dockerfile instead of `run`.
    public var build: BuildStepSpec? = nil
    /// The step's own `network`, overriding the job's (nil: the job's).
    public var network: ContainerConfiguration.Network?

    public init(name: String, run: Run) {
        self.name = name
        self.run = run
    }
}

/// A secret a job says it uses. Deliberately no source: the job file is untrusted, so
/// where the value comes from is the operator's choice (`--secret`, the policy's `secrets`).
public struct SecretSpec: Sendable, Equatable {
    /// The job fails before any step runs when no operator source provides a value.
    public var required: Bool = false
    public init(required: Bool = false) {
        self.required = required
    }
}

/// A job-level artifact rule.
public struct ArtifactRule: Sendable, Equatable {
    public var name: String
    public var paths: [String]
    public var exclude: [String] = []
    public var when: StepSpec.When = .onSuccess
    public var required: Bool = false
    public init(name: String, paths: [String]) {
        self.name = name
        self.paths = paths
    }
}
