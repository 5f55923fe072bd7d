import FoundationEssentials

/// One `agent build` (or job step `build`), as the operator and the job asked for it.
/// Every host-side name in it (context, file, secret sources, cache scope, push registry)
/// was granted before it gets here: the CLI's flags are the operator's, a job's keys went
/// through admission.
public struct BuildRequest: Sendable {
    /// Where an image goes once built (`--output`, named as `docker buildx build` names them).
    public enum Output: Sendable, Equatable {
        /// The agent's image store under `name` (`type=image,name=REF[,push=true]`; `-t`).
        case image(name: String, push: Bool)
        /// An OCI image layout as a tar (`type=oci,dest=FILE`).
        case oci(dest: String)
        /// A `docker load` archive (`type=docker,dest=FILE`).
        case docker(dest: String)
        /// The final root filesystem, unpacked (`type=local,dest=DIR`).
        case local(dest: String)
    }

    /// The context folder, opened by the caller (descriptor kept for the build's life).
    public var contextFD: Int32
    /// The context as the user wrote it, for messages.
    public var contextName: String
    /// The Dockerfile's bytes and its name for messages (`Dockerfile:7: ...`).
    public var dockerfile: [UInt8]
    public var dockerfileName: String
    public var tags: [String] = []
    public var buildArgs: [String: String] = [:]
    /// Secret ids the build may mount (values come from `secrets`).
    public var secrets: SecretStore = SecretStore(values: [:])
    public var target: String? = nil
    public var noCache = false
    public var outputs: [Output] = []
    /// `--push`: every `-t` tag is pushed as well.
    public var push = false
    /// The operator's cache scope (build cache entries and `type=cache` mounts).
    public var cacheScope = "default"
    /// `SOURCE_DATE_EPOCH`: layer file times and `created` (nil: now, file times kept).
    public var sourceDateEpoch: Int64? = nil
    /// `compression=zstd` on an output, else gzip.
    public var zstd = false

    public init(contextFD: Int32, contextName: String, dockerfile: [UInt8], dockerfileName: String) {
        self.contextFD = contextFD
        self.contextName = contextName
        self.dockerfile = dockerfile
        self.dockerfileName = dockerfileName
    }

    /// Parses one `--output` spec (`type=oci,dest=out.tar`, `type=image,name=REF,push=true`).
    public static func parseOutput(_ text: String) throws(BuildError) -> Output {
        var kv: [String: String] = [:]
        for part in text.split(separator: ",") {
            let p = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            kv[p[0]] = p.count > 1 ? p[1] : "true"
        }
        let type = kv["type"] ?? (kv.isEmpty ? "" : "local")
        func dest() throws(BuildError) -> String {
            guard let d = kv["dest"], !d.isEmpty else {
                throw BuildError(.badInput, stage: "output", "--output \(text): type=\(type) needs dest=PATH")
            }
            return d
        }
        switch type {
        case "oci": return .oci(dest: try dest())
        case "docker": return .docker(dest: try dest())
        case "local": return .local(dest: try dest())
        case "image", "registry":
            guard let n = kv["name"], !n.isEmpty else {
                throw BuildError(.badInput, stage: "output", "--output \(text): type=\(type) needs name=REF")
            }
            return .image(name: n, push: type == "registry" || kv["push"] == "true")
        default:
            throw BuildError(.badInput, stage: "output",
                             "--output \(text): unknown type \"\(type)\" (use oci, docker, local or image)")
        }
    }
}

/// What a build produced.
public struct BuildResult: Sendable {
    /// The final image's manifest digest (nil when a RUN failed).
    public var manifestDigest: String?
    public var configDigest: String?
    /// Instructions run and instructions taken from the build cache.
    public var ran = 0
    public var cached = 0
    public var tags: [String] = []
    public var pushed: [String] = []
}

/// A build that did not finish. `code` is the exit status it maps to (run-job's table).
public struct BuildError: Error, Sendable, CustomStringConvertible {
    public enum Code: Int32, Sendable {
        /// A RUN exited non-zero (the message names the Dockerfile line).
        case runFailed = 1
        /// Bad Dockerfile, flag, context path or a refused request.
        case badInput = 2
        /// The agent could not do its part (store, sandbox, registry).
        case agent = 3
        case cancelled = 130
    }

    public var code: Code
    /// The failing stage: `parse`, `context`, `RUN`, `COPY`, `export`, `push`, ...
    public var stage: String
    public var message: String

    public init(_ code: Code, stage: String, _ message: String) {
        self.code = code
        self.stage = stage
        self.message = message
    }

    public var description: String { message }
}
