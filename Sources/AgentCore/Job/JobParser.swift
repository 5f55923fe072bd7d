import AgentSupport
import FoundationEssentials
import Glibc
import Images
import Sandbox

/// Reads and validates a job file (format version 1, see `ci/schema/job.schema.json`).
///
/// Every error is a `JobValidationError` naming the file and the JSON path, and only the first
/// one is reported, in a fixed order: per object, unknown keys (alphabetically) first, then
/// missing required keys, then each known key in the order the format documents them.
public enum JobParser {
    /// Keys of the job object, in documentation order (also the order suggestions prefer).
    static let jobKeys = [
        "version", "id", "image", "pull", "workspace", "env", "network", "timeout", "resources",
        "cache", "secrets", "services", "services_stop_grace", "artifacts", "steps", "$schema",
    ]

    /// Job files larger than this are refused before they are read.
    public static let maximumFileBytes = 4 << 20

    /// Job ids, cache scopes, secret ids and artifact names: `[A-Za-z0-9._-]{1,128}`.
    /// They become folder and file names, so `.` and `..` are refused as well.
    public static func isValidName(_ s: String) -> Bool {
        guard (1...128).contains(s.utf8.count), s != ".", s != ".." else { return false }
        return s.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                || b == 0x2E || b == 0x5F || b == 0x2D
        }
    }

    static let nameRule = "use 1 to 128 characters from A-Z a-z 0-9 . _ - (not \".\" or \"..\")"

    /// Environment variable names: `[A-Za-z_][A-Za-z0-9_]*`.
    public static func isValidEnvName(_ s: String) -> Bool {
        guard let first = s.utf8.first, !(first >= 0x30 && first <= 0x39) else { return false }
        return s.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F
        }
    }

    /// Parses the job file at `path`. `displayName` is how errors name the file
    /// (default: `path` as given). Relative paths in the job resolve against the file's folder.
    public static func parse(fileAt path: String, displayName: String? = nil) throws -> JobSpec {
        let name = displayName ?? path
        var st = stat()
        if stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size > maximumFileBytes {
            throw JobValidationError(file: name, path: "", message:
                "the job file is \(st.st_size) bytes; the limit is \(maximumFileBytes) (is this a job file?)")
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        // The size check above covers regular files; this one anything else (a FIFO, /dev/zero).
        guard fd >= 0, let bytes = readUpTo(fd, limit: maximumFileBytes + 1), bytes.count <= maximumFileBytes else {
            let reason = String(cString: strerror(errno))
            if fd >= 0 { close(fd) }
            throw JobValidationError(file: name, path: "", message: "cannot read the job file: \(Self.readFailure(path, reason))")
        }
        close(fd)
        let data = Data(bytes)
        let base = path.lexicallyNormalizedPath(relativeTo: FileManager.default.currentDirectoryPath).deletingLastPathComponent
        return try parse(data: data, fileName: name, baseDirectory: base)
    }

    /// Parses a job from `data`. `fileName` names it in errors and gives the default id
    /// (its base name without `.json`); relative paths resolve against `baseDirectory`.
    public static func parse(data: Data, fileName: String, baseDirectory: String) throws -> JobSpec {
        let json: JSONValue
        do {
            json = try JSONValue.parse(data)
        } catch {
            throw JobValidationError(file: fileName, path: "", message: "not valid JSON: \(error)")
        }
        let base = URL(fileURLWithPath: baseDirectory).standardizedFileURL.path
        let root = JobJSONNode(value: json, path: "", file: fileName)
        return try JobDocumentParser(file: fileName, baseDirectory: base).job(root)
    }

    /// Why a read failed, in words (`No such file or directory`), from errno when we can.
    private static func readFailure(_ path: String, _ fallback: String) -> String {
        var st = stat()
        if stat(path, &st) != 0 { return String(cString: strerror(errno)) }
        if (st.st_mode & S_IFMT) == S_IFDIR { return "it is a directory" }
        if access(path, R_OK) != 0 { return String(cString: strerror(errno)) }
        return fallback.isEmpty ? "unreadable" : fallback
    }
}

/// The walk over one document; split from `JobParser` so the per-part functions
/// (steps, secrets, artifacts) can live in their own files.
struct JobDocumentParser {
    let file: String
    let baseDirectory: String

    func job(_ root: JobJSONNode) throws -> JobSpec {
        let obj = try root.object("a JSON object (the job)")
        try obj.checkKeys(allowed: JobParser.jobKeys, required: ["version", "steps"])

        let versionNode = obj["version"]!
        let version = try versionNode.integer("the number 1")
        guard version == 1 else {
            throw versionNode.error("unsupported version \(version): this agent reads version 1")
        }

        let id: String
        if let idNode = obj["id"] {
            id = try idNode.string()
            guard JobParser.isValidName(id) else {
                throw idNode.error("\(jsonQuoted(id)) is not a valid job id: \(JobParser.nameRule)")
            }
        } else {
            id = Self.defaultID(fileName: file)
            guard JobParser.isValidName(id) else {
                throw JobValidationError(file: file, path: "", message:
                    "the job id defaults to the file name, and \(jsonQuoted(id)) is not a valid job id: \(JobParser.nameRule); set \"id\"")
            }
        }

        var spec = JobSpec(id: id, steps: [], baseDirectory: baseDirectory)
        if let n = obj["image"] { spec.image = try image(n) }
        if let n = obj["pull"] { spec.pull = PullPolicy(rawValue: try enumValue(n, PullPolicy.allCases.map(\.rawValue)))! }
        if let n = obj["workspace"] { spec.workspace = try workspace(n) }
        if let n = obj["env"] { spec.env = try env(n) }
        if let n = obj["network"] {
            spec.network = ContainerConfiguration.Network(rawValue: try enumValue(n, ContainerConfiguration.Network.allCases.map(\.rawValue)))!
        }
        if let n = obj["timeout"] { spec.timeout = try duration(n) }
        if let n = obj["resources"] { spec.resources = try resources(n) }
        if let n = obj["cache"] { spec.requestedCacheScope = try cache(n) }
        if let n = obj["secrets"] { spec.secrets = try secrets(n) }
        if let n = obj["services"] { spec.services = try services(n, secrets: spec.secrets) }
        if let n = obj["services_stop_grace"] {
            spec.servicesStopGrace = try duration(n)
            // A service that ignores SIGTERM holds the job this long after its last step.
            guard spec.servicesStopGrace <= ServiceSpec.maximumStopGrace else {
                throw n.error("must be at most \(JobDuration.format(ServiceSpec.maximumStopGrace))")
            }
        }
        if let n = obj["artifacts"] { spec.artifacts = try artifacts(n) }
        spec.steps = try steps(obj["steps"]!)
        try checkServices(spec, obj)
        // A build step's secret ids are the job's too (values only from the operator).
        for step in spec.steps { for id in step.build?.secrets ?? [] where spec.secrets[id] == nil { spec.secrets[id] = SecretSpec() } }
        if let n = obj["$schema"] { _ = try n.string() }
        return spec
    }

    /// `job.json` → `job`; `dir/build.ci.json` → `build.ci`.
    static func defaultID(fileName: String) -> String {
        let base = fileName.lastPathComponent
        return base.hasSuffix(".json") ? String(base.dropLast(5)) : base
    }

    // MARK: shared value kinds

    func resolve(_ p: String) -> String {
        let joined = p.hasPrefix("/") ? p : baseDirectory + "/" + p
        return URL(fileURLWithPath: joined).standardizedFileURL.path
    }

    /// One of `allowed`, with a suggestion for near misses.
    func enumValue(_ n: JobJSONNode, _ allowed: [String]) throws -> String {
        let list = allowed.map { jsonQuoted($0) }.joined(separator: ", ")
        let s = try n.string("one of \(list)")
        guard allowed.contains(s) else {
            var message = "\(jsonQuoted(s)) is not one of \(list)"
            if let guess = DidYouMean.suggestion(for: s, among: allowed) { message += " (did you mean \(jsonQuoted(guess))?)" }
            throw n.error(message)
        }
        return s
    }

    func duration(_ n: JobJSONNode) throws -> Duration {
        let s = try n.string("a duration string like \"90s\"")
        do { return try JobDuration.parse(s) } catch { throw n.error(error.description) }
    }

    func env(_ n: JobJSONNode) throws -> [String: String] {
        let obj = try n.object("an object of environment variables (name: string value)")
        var out: [String: String] = [:]
        for (key, value) in obj.members {
            guard JobParser.isValidEnvName(key) else {
                throw value.error("\(jsonQuoted(key)) is not a valid environment variable name: use A-Z a-z 0-9 _, not starting with a digit")
            }
            let s = try value.string("a string (quote numbers and booleans)")
            guard !s.utf8.contains(0) else { throw value.error("must not contain a NUL byte") }
            out[key] = s
        }
        return out
    }

    /// An absolute container path without `..` components (e.g. a workdir or tmpfs target).
    func containerPath(_ n: JobJSONNode, _ s: String) throws -> String {
        guard s.hasPrefix("/") else { throw n.error("\(jsonQuoted(s)) must be an absolute path inside the container") }
        guard !s.split(separator: "/").contains("..") else { throw n.error("\(jsonQuoted(s)) must not contain \"..\" components") }
        guard !s.utf8.contains(0) else { throw n.error("must not contain a NUL byte") }
        return s
    }
}
