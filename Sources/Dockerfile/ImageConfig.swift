/// The part of an OCI image config a Dockerfile reads and changes, as the executor
/// hands it to `StageState` (from the base image, or the parent stage's result) and
/// writes it out after the last instruction.
public struct ImageConfig: Sendable, Equatable {
    /// `Env`, `NAME=value` strings in order.
    public var env: [String]
    /// `WorkingDir`, "" when unset (then `/`).
    public var workingDir: String
    /// `User`, "" when unset (root of the container).
    public var user: String
    /// `Shell` (Docker's extension), nil for the default `["/bin/sh", "-c"]`.
    public var shell: [String]?
    /// `Cmd`, nil when unset.
    public var cmd: [String]?
    /// `Entrypoint`, nil when unset.
    public var entrypoint: [String]?
    /// `Labels`.
    public var labels: [String: String]
    /// `ExposedPorts` keys (`80/tcp`), sorted.
    public var exposedPorts: [String]
    /// `Volumes` keys, sorted.
    public var volumes: [String]
    /// `StopSignal`, nil when unset.
    public var stopSignal: String?
    /// `Healthcheck` (Docker's extension), nil when unset.
    public var healthcheck: Healthcheck?
    /// `OnBuild` triggers (Docker's extension): instruction texts.
    public var onBuild: [String]
    /// The image's `author` (from `MAINTAINER`).
    public var author: String?

    /// An empty config, as `FROM scratch` starts from.
    public init(env: [String] = [], workingDir: String = "", user: String = "", shell: [String]? = nil,
                cmd: [String]? = nil, entrypoint: [String]? = nil, labels: [String: String] = [:],
                exposedPorts: [String] = [], volumes: [String] = [], stopSignal: String? = nil,
                healthcheck: Healthcheck? = nil, onBuild: [String] = [], author: String? = nil) {
        self.env = env
        self.workingDir = workingDir
        self.user = user
        self.shell = shell
        self.cmd = cmd
        self.entrypoint = entrypoint
        self.labels = labels
        self.exposedPorts = exposedPorts
        self.volumes = volumes
        self.stopSignal = stopSignal
        self.healthcheck = healthcheck
        self.onBuild = onBuild
        self.author = author
    }

    /// The `PATH` BuildKit sets when the base image has none.
    public static let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// The shell for shell-form commands: `Shell`, else `["/bin/sh", "-c"]`.
    public var effectiveShell: [String] { shell ?? ["/bin/sh", "-c"] }
}

/// A platform as `--platform` and the `TARGET*`/`BUILD*` ARGs name it: `linux/amd64`,
/// `linux/arm/v7`.
public struct Platform: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var os: String
    public var architecture: String
    public var variant: String?

    public init(os: String, architecture: String, variant: String? = nil) {
        self.os = os
        self.architecture = architecture
        self.variant = variant
    }

    /// Parses `os/arch[/variant]` (or `arch` alone, meaning linux); nil when malformed.
    public static func parse(_ s: String) -> Platform? {
        let parts = s.lowercased().split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        func ok(_ p: String) -> Bool {
            !p.isEmpty && p.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "-" }
        }
        guard parts.allSatisfy(ok) else { return nil }
        switch parts.count {
        case 1: return Platform(os: "linux", architecture: normalize(parts[0]))
        case 2: return Platform(os: parts[0], architecture: normalize(parts[1]))
        case 3: return Platform(os: parts[0], architecture: normalize(parts[1]), variant: parts[2])
        default: return nil
        }
    }

    static func normalize(_ arch: String) -> String {
        switch arch {
        case "x86_64", "x86-64": "amd64"
        case "aarch64": "arm64"
        default: arch
        }
    }

    /// The machine the agent runs on (Linux; the architecture it was compiled for).
    public static var host: Platform {
        #if arch(x86_64)
        Platform(os: "linux", architecture: "amd64")
        #elseif arch(arm64)
        Platform(os: "linux", architecture: "arm64", variant: "v8")
        #elseif arch(arm)
        Platform(os: "linux", architecture: "arm", variant: "v7")
        #else
        Platform(os: "linux", architecture: "unknown")
        #endif
    }

    /// `linux/amd64`, `linux/arm64/v8`.
    public var description: String {
        [os, architecture, variant].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: "/")
    }
}
