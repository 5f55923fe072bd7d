import AgentSupport
import FoundationEssentials
import Glibc

// Reading and writing Docker's seccomp JSON. Every error names the JSON path that is wrong,
// because a profile is hand-edited text and "invalid profile" alone is useless.

extension SeccompProfile {
    /// Parses a Docker-format profile. Unknown keys, wrong types, unknown actions or
    /// operators, and `SCMP_ACT_NOTIFY` (which needs a user-space listener this agent does
    /// not run) are errors naming the JSON path. Syscall names are not checked here: names
    /// this libseccomp does not know are skipped at compile time, as runc does.
    public init(json text: String) throws {
        try self.init(jsonData: Data(text.utf8))
    }

    /// Parses a Docker-format profile from UTF-8 bytes; see `init(json:)`.
    public init(jsonData: Data) throws {
        let document: JSONValue
        do {
            document = try JSONValue.parse(jsonData)
        } catch {
            throw SeccompError(message: "seccomp profile: not valid JSON: \(error)")
        }
        let fail: @Sendable (String, String) -> any Error = { SeccompError.at($0, $1) }
        let root = try JSONObjectReader(document, path: "", fail: fail)
        try root.rejectUnknownKeys(["defaultAction", "defaultErrnoRet", "defaultErrno", "architectures", "archMap",
                                    "syscalls", "flags", "listenerPath", "listenerMetadata", "comment"])
        if let listener = try root.string("listenerPath"), !listener.isEmpty {
            throw SeccompError.at("listenerPath", "seccomp notify listeners are not supported")
        }
        _ = try root.string("listenerMetadata")
        // Filter flags are arguments of the seccomp() call that loads the filter, not part of
        // the BPF program this profile compiles to, so a profile that needs them cannot be honoured.
        if let flags = try root.strings("flags"), !flags.isEmpty {
            throw SeccompError.at("flags", "seccomp filter flags are not supported (found \(flags.joined(separator: ", ")))")
        }

        guard let defaultName = try root.string("defaultAction") else {
            throw SeccompError.at("defaultAction", "missing (required)")
        }
        let defaultAction = try Self.action(defaultName, path: "defaultAction")
        let defaultErrnoRet = try Self.returnCode(root, number: "defaultErrnoRet", name: "defaultErrno")

        let architectures = try root.strings("architectures") ?? []
        for (i, arch) in architectures.enumerated() {
            try Self.checkArchitectureToken(arch, path: "architectures[\(i)]")
        }
        var archMap: [ArchitectureGroup] = []
        for (i, item) in (try root.array("archMap") ?? []).enumerated() {
            let entry = try JSONObjectReader(item, path: "archMap[\(i)]", fail: fail)
            try entry.rejectUnknownKeys(["architecture", "subArchitectures"])
            guard let arch = try entry.string("architecture") else {
                throw SeccompError.at(entry.childPath("architecture"), "missing (required)")
            }
            try Self.checkArchitectureToken(arch, path: entry.childPath("architecture"))
            let subs = try entry.strings("subArchitectures") ?? []
            for (j, sub) in subs.enumerated() {
                try Self.checkArchitectureToken(sub, path: "\(entry.childPath("subArchitectures"))[\(j)]")
            }
            archMap.append(ArchitectureGroup(architecture: arch, subArchitectures: subs))
        }
        if !architectures.isEmpty && !archMap.isEmpty {
            throw SeccompError.at("architectures", "use either architectures or archMap, not both")
        }

        var rules: [Rule] = []
        for (i, item) in (try root.array("syscalls") ?? []).enumerated() {
            rules.append(try Self.rule(item, path: "syscalls[\(i)]", fail: fail))
        }
        self.init(defaultAction: defaultAction, defaultErrnoRet: defaultErrnoRet,
                  architectures: architectures, archMap: archMap, syscalls: rules)
    }

    private static func rule(_ value: JSONValue, path: String,
                             fail: @escaping @Sendable (String, String) -> any Error) throws -> Rule {
        let entry = try JSONObjectReader(value, path: path, fail: fail)
        try entry.rejectUnknownKeys(["names", "name", "action", "errnoRet", "errno", "args", "includes", "excludes",
                                     "comment"])
        let names = try entry.strings("names")
        let legacyName = try entry.string("name")
        if names != nil && legacyName != nil {
            throw SeccompError.at(entry.childPath("name"), "use either name or names, not both")
        }
        let allNames = names ?? legacyName.map { [$0] } ?? []
        if allNames.isEmpty {
            throw SeccompError.at(entry.childPath("names"), "missing or empty (a rule needs at least one syscall name)")
        }
        for (j, name) in allNames.enumerated() where name.isEmpty {
            throw SeccompError.at("\(entry.childPath("names"))[\(j)]", "empty syscall name")
        }
        guard let actionName = try entry.string("action") else {
            throw SeccompError.at(entry.childPath("action"), "missing (required)")
        }
        let action = try Self.action(actionName, path: entry.childPath("action"))
        let errnoRet = try returnCode(entry, number: "errnoRet", name: "errno")
        if errnoRet != nil && !action.takesReturnCode {
            let key = try entry.unsigned("errnoRet") != nil ? "errnoRet" : "errno"
            throw SeccompError.at(entry.childPath(key), "only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take \(key), not \(actionName)")
        }
        var args: [Argument] = []
        for (k, item) in (try entry.array("args") ?? []).enumerated() {
            let arg = try JSONObjectReader(item, path: "\(entry.childPath("args"))[\(k)]", fail: fail)
            try arg.rejectUnknownKeys(["index", "value", "valueTwo", "op"])
            guard let index = try arg.unsigned("index") else {
                throw SeccompError.at(arg.childPath("index"), "missing (required)")
            }
            guard index <= 5 else {
                throw SeccompError.at(arg.childPath("index"), "\(index) is not an argument number (0...5)")
            }
            guard let opName = try arg.string("op") else {
                throw SeccompError.at(arg.childPath("op"), "missing (required)")
            }
            guard let op = Operator(rawValue: opName) else {
                throw SeccompError.at(arg.childPath("op"), "unknown operator \(opName) (expected one of: \(Operator.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            args.append(Argument(index: UInt32(index), value: try arg.unsigned("value") ?? 0,
                                 valueTwo: try arg.unsigned("valueTwo") ?? 0, op: op))
        }
        return Rule(names: allNames, action: action, errnoRet: errnoRet, args: args,
                    includes: try filter(entry.object("includes")),
                    excludes: try filter(entry.object("excludes")),
                    comment: try entry.string("comment"))
    }

    /// A return code given as a number (`errnoRet`, Docker) or as an errno name (`errno`,
    /// containers-common, e.g. "ENOSYS"). The number wins when both are given, as in
    /// containers-common where `errnoRet` is the older, explicit form. An unknown name is an
    /// error naming the key.
    private static func returnCode(_ reader: JSONObjectReader, number: String, name: String) throws -> UInt32? {
        let numeric = try reader.unsigned(number, max: 0xFFFF).map(UInt32.init)
        guard let text = try reader.string(name) else { return numeric }
        guard let value = ErrnoNames.number(text) else {
            throw SeccompError.at(reader.childPath(name), "\(text) is not an errno name (expected EPERM, ENOSYS and the like)")
        }
        return numeric ?? UInt32(value)
    }

    private static func filter(_ reader: JSONObjectReader?) throws -> Filter {
        guard let reader else { return Filter() }
        try reader.rejectUnknownKeys(["caps", "arches", "minKernel"])
        var minKernel: KernelVersion?
        if let text = try reader.string("minKernel") {
            // Docker accepts exactly "major.minor" here.
            guard text.split(separator: ".").count == 2, let version = KernelVersion(text),
                  "\(version)" == text else {
                throw SeccompError.at(reader.childPath("minKernel"), "\"\(text)\" is not a kernel version like \"4.8\"")
            }
            minKernel = version
        }
        return Filter(caps: try reader.strings("caps") ?? [], arches: try reader.strings("arches") ?? [], minKernel: minKernel)
    }

    private static func action(_ name: String, path: String) throws -> Action {
        if name == "SCMP_ACT_NOTIFY" {
            throw SeccompError.at(path, "SCMP_ACT_NOTIFY is not supported (it needs a seccomp listener, which this agent does not run)")
        }
        guard let action = Action(rawValue: name) else {
            throw SeccompError.at(path, "unknown action \(name) (expected one of: \(Action.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        return action
    }

    private static func checkArchitectureToken(_ token: String, path: String) throws {
        guard token.hasPrefix("SCMP_ARCH_"), token.count > "SCMP_ARCH_".count else {
            throw SeccompError.at(path, "\(token) is not an architecture (expected SCMP_ARCH_X86_64 and the like)")
        }
    }

}

extension SeccompProfile {
    /// The profile as Docker-format JSON text with sorted keys (stable, so equal profiles
    /// produce equal text and equal cache keys). Comments are kept.
    public var jsonText: String {
        func filter(_ f: Filter) -> JSONValue? {
            if f.isEmpty { return nil }
            var fields: [String: JSONValue] = [:]
            if !f.caps.isEmpty { fields["caps"] = .array(f.caps.map(JSONValue.string)) }
            if !f.arches.isEmpty { fields["arches"] = .array(f.arches.map(JSONValue.string)) }
            if let k = f.minKernel { fields["minKernel"] = .string(k.description) }
            return .object(fields)
        }
        var root: [String: JSONValue] = ["defaultAction": .string(defaultAction.rawValue)]
        if let e = defaultErrnoRet { root["defaultErrnoRet"] = .unsigned(UInt64(e)) }
        if !architectures.isEmpty { root["architectures"] = .array(architectures.map(JSONValue.string)) }
        if !archMap.isEmpty {
            root["archMap"] = .array(archMap.map {
                .object(["architecture": .string($0.architecture),
                         "subArchitectures": .array($0.subArchitectures.map(JSONValue.string))])
            })
        }
        root["syscalls"] = .array(syscalls.map { rule in
            var fields: [String: JSONValue] = ["names": .array(rule.names.map(JSONValue.string)),
                                               "action": .string(rule.action.rawValue)]
            if let e = rule.errnoRet { fields["errnoRet"] = .unsigned(UInt64(e)) }
            if !rule.args.isEmpty {
                fields["args"] = .array(rule.args.map {
                    .object(["index": .unsigned(UInt64($0.index)), "value": .unsigned($0.value),
                             "valueTwo": .unsigned($0.valueTwo), "op": .string($0.op.rawValue)])
                })
            }
            if let i = filter(rule.includes) { fields["includes"] = i }
            if let x = filter(rule.excludes) { fields["excludes"] = x }
            if let c = rule.comment { fields["comment"] = .string(c) }
            return .object(fields)
        })
        return JSONValue.object(root).serialized() + "\n"
    }
}
