import AgentSupport
import FoundationEssentials
import Glibc

// Reading and writing the agent policy's JSON. The reader goes through `JSONValue` so
// each error names the exact key (`cache.keepPercentOfDisk`) and the file.

extension AgentPolicy {
    static let knownKeys: Set<String> = [
        "comment", "capabilities", "seccompProfile", "allowHostNetwork", "allowedBindSources",
        "workspaceRoots", "rootfsRoots",
        "allowNetlink", "allowRawSockets", "artifactBudgetBytes", "cache", "maxSecretBytes", "tmpfs",
    ]

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
        if let names = try root.strings("capabilities") {
            var set = CapabilitySet.empty
            for (i, name) in names.enumerated() {
                do {
                    set = set.union(try CapabilitySet(names: [name]))
                } catch {
                    throw PolicyError(file: file, key: "capabilities[\(i)]", problem: "\(error)")
                }
            }
            capabilities = set
        }
        if let profile = try root.string("seccompProfile") {
            switch profile {
            case "default": seccompProfile = .projectDefault
            case "unconfined": seccompProfile = .unconfined
            case "": throw PolicyError(file: file, key: "seccompProfile", problem: "empty (use \"default\", \"unconfined\" or a file path)")
            default:
                if profile.hasPrefix("/") || baseDirectory == nil {
                    seccompProfile = .file(profile)
                } else {
                    seccompProfile = .file(URL(fileURLWithPath: profile, relativeTo: URL(fileURLWithPath: baseDirectory!, isDirectory: true)).standardizedFileURL.path)
                }
            }
        }
        allowHostNetwork = try root.bool("allowHostNetwork") ?? allowHostNetwork
        if let sources = try root.strings("allowedBindSources") {
            for (i, source) in sources.enumerated() where AgentPolicy.components(source) == nil {
                throw PolicyError(file: file, key: "allowedBindSources[\(i)]",
                                  problem: "\"\(source)\" is not an absolute path without \"..\"")
            }
            allowedBindSources = sources
        }
        workspaceRoots = try Self.roots(root, "workspaceRoots", file: file) ?? workspaceRoots
        rootfsRoots = try Self.roots(root, "rootfsRoots", file: file) ?? rootfsRoots
        allowNetlink = try root.bool("allowNetlink") ?? allowNetlink
        allowRawSockets = try root.bool("allowRawSockets") ?? allowRawSockets
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
        var fields: [String: JSONValue] = [
            "capabilities": .array(capabilities.names.map(JSONValue.string)),
            "allowHostNetwork": .bool(allowHostNetwork),
            "allowedBindSources": .array(allowedBindSources.map(JSONValue.string)),
            "workspaceRoots": .array(workspaceRoots.map(JSONValue.string)),
            "rootfsRoots": .array(rootfsRoots.map(JSONValue.string)),
            "allowNetlink": .bool(allowNetlink),
            "allowRawSockets": .bool(allowRawSockets),
            "artifactBudgetBytes": .unsigned(artifactBudgetBytes),
            "maxSecretBytes": .unsigned(maxSecretBytes),
        ]
        fields["seccompProfile"] = switch seccompProfile {
        case .projectDefault: .string("default")
        case .unconfined: .string("unconfined")
        case .file(let path): .string(path)
        }
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

