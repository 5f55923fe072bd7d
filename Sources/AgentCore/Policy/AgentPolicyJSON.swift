import AgentSupport
import FoundationEssentials
import Glibc
import SandboxPolicy

// Reading and writing the agent policy's JSON. The reader goes through `JSONValue` so
// each error names the exact key (`cache.keepPercentOfDisk`) and the file.

extension AgentPolicy {
    /// The job-level keys; the sandbox keys are `SandboxLimits.keys`.
    static let knownKeys: Set<String> = SandboxLimits.keys.union([
        "comment", "allowedBindSources",
        "workspaceRoots", "rootfsRoots",
        "artifactBudgetBytes", "cache", "maxSecretBytes", "secrets", "images", "tmpfs",
        "defaultPids", "reports", "minFreeDiskBytes",
    ])

    /// Parses policy JSON; `file` names the source in errors, `baseDirectory` anchors a
    /// relative `seccompProfile` path.
    init(jsonData: Data, file: String, baseDirectory: String) throws {
        let document: JSONValue
        do {
            document = try JSONValue.parse(jsonData)
        } catch {
            throw PolicyError(file: file, key: nil, problem: "not valid JSON: \(error)")
        }
        try self.init(document: document, file: file, baseDirectory: baseDirectory)
    }

    init(document: JSONValue, file: String, baseDirectory: String?) throws {
        let fail: @Sendable (String, String) -> any Error = { PolicyError(file: file, key: $0, problem: $1) }
        let root = try JSONObjectReader(document, path: "", fail: fail)
        try root.rejectUnknownKeys(Self.knownKeys)
        self.init()
        _ = try root.string("comment")
        sandbox = try SandboxLimits(reading: root, file: file, baseDirectory: baseDirectory)
        if let sources = try root.strings("allowedBindSources") {
            for (i, source) in sources.enumerated() where AgentPolicy.components(source) == nil {
                throw PolicyError(file: file, key: "allowedBindSources[\(i)]",
                                  problem: "\"\(source)\" is not an absolute path without \"..\"")
            }
            allowedBindSources = sources
        }
        workspaceRoots = try Self.roots(root, "workspaceRoots", file: file) ?? workspaceRoots
        rootfsRoots = try Self.roots(root, "rootfsRoots", file: file) ?? rootfsRoots
        artifactBudgetBytes = try root.unsigned("artifactBudgetBytes") ?? artifactBudgetBytes
        if let cacheReader = try root.object("cache") {
            try cacheReader.rejectUnknownKeys(["keepBytes", "keepPercentOfDisk", "importMaxEntries"])
            cache.keepBytes = try cacheReader.unsigned("keepBytes") ?? cache.keepBytes
            cacheImport.maxEntries = try cacheReader.unsigned("importMaxEntries") ?? cacheImport.maxEntries
            if let percent = try cacheReader.number("keepPercentOfDisk") {
                guard (0...100).contains(percent) else {
                    throw PolicyError(file: file, key: "cache.keepPercentOfDisk", problem: "\(percent) is not a percentage (0...100)")
                }
                cache.keepPercentOfDisk = percent
            }
        }
        maxSecretBytes = try root.unsigned("maxSecretBytes") ?? maxSecretBytes
        if let tmpfsReader = try root.object("tmpfs") {
            try tmpfsReader.rejectUnknownKeys(["defaultSizeBytes", "maxSizeBytes"])
            tmpfs.defaultSizeBytes = try tmpfsReader.unsigned("defaultSizeBytes") ?? tmpfs.defaultSizeBytes
            tmpfs.maxSizeBytes = try tmpfsReader.unsigned("maxSizeBytes") ?? tmpfs.maxSizeBytes
            // A zero size would mean "unlimited" to the kernel, the very thing these keys prevent.
            guard tmpfs.defaultSizeBytes > 0 else {
                throw PolicyError(file: file, key: "tmpfs.defaultSizeBytes", problem: "must be at least 1")
            }
            guard tmpfs.defaultSizeBytes <= tmpfs.maxSizeBytes else {
                throw PolicyError(file: file, key: "tmpfs.defaultSizeBytes",
                                  problem: "\(tmpfs.defaultSizeBytes) is above tmpfs.maxSizeBytes (\(tmpfs.maxSizeBytes))")
            }
        }
        defaultPids = try root.unsigned("defaultPids") ?? defaultPids
        minFreeDiskBytes = try root.unsigned("minFreeDiskBytes") ?? minFreeDiskBytes
        guard defaultPids > 0 else { throw PolicyError(file: file, key: "defaultPids", problem: "must be at least 1") }
        if let r = try root.object("reports") {
            try r.rejectUnknownKeys(["maxFiles", "maxTotalBytes", "maxFileBytes", "maxCases"])
            reports.maxFiles = try r.unsigned("maxFiles") ?? reports.maxFiles
            reports.maxTotalBytes = try r.unsigned("maxTotalBytes") ?? reports.maxTotalBytes
            reports.maxFileBytes = try r.unsigned("maxFileBytes") ?? reports.maxFileBytes
            reports.maxCases = try r.unsigned("maxCases") ?? reports.maxCases
        }
        if let reader = try root.object("secrets") {
            secrets = try Self.secrets(reader, file: file, baseDirectory: baseDirectory)
        }
        if let reader = try root.object("images") {
            try reader.rejectUnknownKeys(["allowedRegistries", "insecureRegistries", "allowedImages", "storeMaxBytes", "localRoots"])
            images.localRoots = try Self.roots(reader, "localRoots", file: file) ?? []
            images.storeMaxBytes = try reader.unsigned("storeMaxBytes") ?? images.storeMaxBytes
            images.allowedRegistries = try reader.strings("allowedRegistries") ?? []
            images.insecureRegistries = try reader.strings("insecureRegistries") ?? []
            images.allowedImages = try reader.strings("allowedImages")
        }
    }

    /// `"secrets": {"ID": {"file": PATH} | {"env": NAME}, optionally "scopes": [SCOPE, ...]}`.
    private static func secrets(_ reader: JSONObjectReader, file: String, baseDirectory: String?) throws -> [String: Secret] {
        var out: [String: Secret] = [:]
        for id in reader.fields.keys.sorted() {
            let key = reader.childPath(id)
            guard Self.isValidName(id) else {
                throw PolicyError(file: file, key: key, problem: "\"\(id)\" is not a valid secret id (1 to 128 characters from A-Z a-z 0-9 . _ -)")
            }
            guard let entry = try reader.object(id) else {
                throw PolicyError(file: file, key: key, problem: "expected an object like {\"file\": \"PATH\"} or {\"env\": \"NAME\"}")
            }
            try entry.rejectUnknownKeys(["file", "env", "scopes"])
            let source: Secret.Source
            switch (try entry.string("file"), try entry.string("env")) {
            case (let path?, nil):
                guard !path.isEmpty else { throw PolicyError(file: file, key: key + ".file", problem: "empty (expected a path)") }
                source = .file(Self.resolve(path, against: baseDirectory))
            case (nil, let name?):
                guard Self.isValidEnvName(name) else {
                    throw PolicyError(file: file, key: key + ".env", problem: "\"\(name)\" is not a valid environment variable name")
                }
                source = .env(name)
            case (.some, .some):
                throw PolicyError(file: file, key: key, problem: "give either \"file\" or \"env\", not both")
            case (nil, nil):
                throw PolicyError(file: file, key: key, problem: "needs \"file\" or \"env\" (where the value comes from)")
            }
            let scopes = try entry.strings("scopes")
            for (i, scope) in (scopes ?? []).enumerated() where !Self.isValidName(scope) {
                throw PolicyError(file: file, key: "\(key).scopes[\(i)]", problem: "\"\(scope)\" is not a valid cache scope")
            }
            out[id] = Secret(source: source, scopes: scopes)
        }
        return out
    }

    /// Secret ids and cache scopes: the job format's `[A-Za-z0-9._-]{1,128}`, not `.` or `..`.
    static func isValidName(_ s: String) -> Bool {
        (1...128).contains(s.utf8.count) && s != "." && s != ".."
            && s.utf8.allSatisfy { b in
                (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2E || b == 0x5F || b == 0x2D
            }
    }

    static func isValidEnvName(_ s: String) -> Bool {
        guard let first = s.utf8.first, !(first >= 0x30 && first <= 0x39) else { return false }
        return s.utf8.allSatisfy { b in (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F }
    }

    /// A relative path in the policy file means relative to the policy file's folder.
    static func resolve(_ path: String, against baseDirectory: String?) -> String {
        guard !path.hasPrefix("/"), let baseDirectory else { return path }
        return URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: baseDirectory, isDirectory: true)).standardizedFileURL.path
    }

    /// A list of absolute folders without `..` (`workspaceRoots`, `rootfsRoots`).
    private static func roots(_ reader: JSONObjectReader, _ key: String, file: String) throws -> [String]? {
        guard let paths = try reader.strings(key) else { return nil }
        for (i, path) in paths.enumerated() where AgentPolicy.components(path) == nil {
            throw PolicyError(file: file, key: "\(key)[\(i)]", problem: "\"\(path)\" is not an absolute path without \"..\"")
        }
        return paths
    }

    /// The policy as JSON, in the same shape as `policies/policy.json`.
    public var jsonText: String {
        var fields = sandbox.jsonFields
        fields.merge([
            "allowedBindSources": .array(allowedBindSources.map(JSONValue.string)),
            "workspaceRoots": .array(workspaceRoots.map(JSONValue.string)),
            "rootfsRoots": .array(rootfsRoots.map(JSONValue.string)),
            "artifactBudgetBytes": .unsigned(artifactBudgetBytes),
            "maxSecretBytes": .unsigned(maxSecretBytes),
            "defaultPids": .unsigned(defaultPids),
            "minFreeDiskBytes": .unsigned(minFreeDiskBytes),
            "reports": .object([
                "maxFiles": .unsigned(reports.maxFiles),
                "maxTotalBytes": .unsigned(reports.maxTotalBytes),
                "maxFileBytes": .unsigned(reports.maxFileBytes),
                "maxCases": .unsigned(reports.maxCases),
            ]),
        ]) { $1 }
        fields["secrets"] = .object(secrets.mapValues { secret in
            var entry: [String: JSONValue] = switch secret.source {
            case .file(let path): ["file": .string(path)]
            case .env(let name): ["env": .string(name)]
            }
            if let scopes = secret.scopes { entry["scopes"] = .array(scopes.map(JSONValue.string)) }
            return .object(entry)
        })
        var imageFields: [String: JSONValue] = [
            "allowedRegistries": .array(images.allowedRegistries.map(JSONValue.string)),
            "insecureRegistries": .array(images.insecureRegistries.map(JSONValue.string)),
            "storeMaxBytes": .unsigned(images.storeMaxBytes),
            "localRoots": .array(images.localRoots.map(JSONValue.string)),
        ]
        if let list = images.allowedImages { imageFields["allowedImages"] = .array(list.map(JSONValue.string)) }
        fields["images"] = .object(imageFields)
        let percent = cache.keepPercentOfDisk
        fields["cache"] = .object([
            "keepBytes": .unsigned(cache.keepBytes),
            "keepPercentOfDisk": percent == percent.rounded() && percent >= 0 ? .unsigned(UInt64(percent)) : .double(percent),
            "importMaxEntries": .unsigned(cacheImport.maxEntries),
        ])
        fields["tmpfs"] = .object([
            "defaultSizeBytes": .unsigned(tmpfs.defaultSizeBytes),
            "maxSizeBytes": .unsigned(tmpfs.maxSizeBytes),
        ])
        return JSONValue.object(fields).serialized() + "\n"
    }
}

extension AgentPolicy: Codable {
    /// Decodes the same JSON as `load(path:)`; a relative `seccompProfile` stays relative.
    public init(from decoder: any Decoder) throws {
        let path = decoder.codingPath.map(\.stringValue).joined(separator: ".")
        try self.init(document: try JSONValue(from: decoder), file: path.isEmpty ? "(decoded policy)" : path, baseDirectory: nil)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(try JSONValue.parse(Array(jsonText.utf8)))
    }
}

