import AgentSupport
import FoundationEssentials
import Glibc
import Sandbox

/// `steps[]`: build and test steps, their mounts and the test-only keys.
extension JobDocumentParser {
    static let buildStepKeys = [
        "name", "run", "env", "workdir", "user", "timeout", "when", "allow_failure", "type", "mounts", "network",
    ]
    /// Keys only a `"type": "test"` step may have.
    static let testOnlyKeys = ["reports", "tmpfs", "workspace", "fail_on_report_failures"]

    func steps(_ n: JobJSONNode) throws -> [StepSpec] {
        let items = try n.array("an array of steps")
        guard !items.isEmpty else { throw n.error("must contain at least one step") }
        var seen: [String: Int] = [:]
        var out: [StepSpec] = []
        for (i, item) in items.enumerated() {
            let step = try self.step(item)
            if let first = seen[step.name] {
                throw JobValidationError(file: file, path: "\(item.path).name",
                                         message: "duplicate step name \(jsonQuoted(step.name)) (also steps[\(first)])")
            }
            seen[step.name] = i
            out.append(step)
        }
        return out
    }

    func step(_ n: JobJSONNode) throws -> StepSpec {
        let obj = try n.object("a step object with \"name\" and \"run\"")
        if obj["build"] != nil { return try buildStep(obj) }
        // The type decides which keys are allowed, so read it first.
        var kind = StepSpec.Kind.build
        if let t = obj["type"] { kind = StepSpec.Kind(rawValue: try enumValue(t, StepSpec.Kind.allCases.map(\.rawValue)))! }
        let allowed = kind == .test ? Self.buildStepKeys + Self.testOnlyKeys : Self.buildStepKeys
        try obj.checkKeys(allowed: allowed, required: ["name", "run"]) { key in
            guard Self.testOnlyKeys.contains(key) else { return nil }
            return "\(jsonQuoted(key)) is only allowed on test steps (add \"type\": \"test\")"
        }

        let nameNode = obj["name"]!
        let name = try nameNode.nonEmptyString()
        guard name.utf8.count <= 128 else { throw nameNode.error("step names are at most 128 bytes long") }
        guard !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw nameNode.error("step names must not contain control characters")
        }

        var step = StepSpec(name: name, run: try run(obj["run"]!))
        step.type = kind
        if let v = obj["env"] { step.env = try env(v) }
        if let v = obj["workdir"] { step.workdir = try containerPath(v, try v.nonEmptyString("an absolute path")) }
        if let v = obj["user"] { (step.uid, step.gid) = try user(v); step.userGiven = true }
        if let v = obj["timeout"] { step.timeout = try duration(v) }
        if let v = obj["when"] { step.when = StepSpec.When(rawValue: try enumValue(v, StepSpec.When.allCases.map(\.rawValue)))! }
        if let v = obj["allow_failure"] { step.allowFailure = try v.bool() }
        if let v = obj["mounts"] { step.mounts = try mounts(v) }
        if let v = obj["reports"] { step.reports = try reports(v) }
        if let v = obj["tmpfs"] { step.tmpfs = try tmpfsList(v) }
        if let v = obj["workspace"] {
            step.overlayWorkspace = try enumValue(v, ["readonly", "overlay"]) == "overlay"
        }
        if let v = obj["fail_on_report_failures"] { step.failOnReportFailures = try v.bool() }
        if let v = obj["network"] {
            step.network = ContainerConfiguration.Network(rawValue: try enumValue(v, ContainerConfiguration.Network.allCases.map(\.rawValue)))!
        }
        return step
    }

    static let buildOnlyStepKeys = ["name", "build", "timeout", "when", "allow_failure"]
    static let buildKeys = ["context", "file", "tags", "push", "target", "args", "secrets", "no_cache"]

    /// `{"name": "image", "build": {"context": ".", "file": "Dockerfile", "tags": [...], "push": true,
    /// "target": "...", "args": {...}, "secrets": ["id"], "no_cache": false}}`.
    func buildStep(_ obj: JobJSONObject) throws -> StepSpec {
        try obj.checkKeys(allowed: Self.buildOnlyStepKeys, required: ["name", "build"]) { key in
            "\(jsonQuoted(key)) is not allowed on a build step (a build step has name, build, timeout, when, allow_failure)"
        }
        let name = try obj["name"]!.nonEmptyString()
        let b = try obj["build"]!.object("an object with the build's context, file, tags, ...")
        try b.checkKeys(allowed: Self.buildKeys)
        var spec = BuildStepSpec()
        func relative(_ n: JobJSONNode) throws -> String {
            let s = try n.nonEmptyString("a relative path")
            guard !s.hasPrefix("/"), !s.utf8.contains(0) else { throw n.error("must be a path relative to the workspace") }
            return s
        }
        if let v = b["context"] { spec.context = try relative(v) }
        if let v = b["file"] { spec.file = try relative(v) }
        if let v = b["tags"] { spec.tags = try v.array("an array of image references").map { try $0.nonEmptyString() } }
        if let v = b["push"] { spec.push = try v.bool() }
        if let v = b["target"] { spec.target = try v.nonEmptyString() }
        if let v = b["args"] { spec.args = try env(v) }
        if let v = b["no_cache"] { spec.noCache = try v.bool() }
        if let v = b["secrets"] {
            spec.secrets = try v.array("an array of secret ids").map { node in
                let id = try node.nonEmptyString()
                guard JobParser.isValidName(id) else { throw node.error("\(jsonQuoted(id)) is not a valid secret id: \(JobParser.nameRule)") }
                return id
            }
        }
        var step = StepSpec(name: name, run: .argv(["agent", "build", spec.context]))
        step.build = spec
        if let v = obj["timeout"] { step.timeout = try duration(v) }
        if let v = obj["when"] { step.when = StepSpec.When(rawValue: try enumValue(v, StepSpec.When.allCases.map(\.rawValue)))! }
        if let v = obj["allow_failure"] { step.allowFailure = try v.bool() }
        return step
    }

    /// A string for `/bin/sh -c`, or a non-empty argv array of strings.
    func run(_ n: JobJSONNode) throws -> StepSpec.Run {
        let expected = "a command string or an array of strings"
        if n.stringValue != nil {
            let s = try n.string()
            guard !s.trimmingWhitespaceAndNewlines().isEmpty else { throw n.error("the command must not be empty") }
            guard !s.utf8.contains(0) else { throw n.error("must not contain a NUL byte") }
            return .shell(s)
        }
        guard n.isArray else { throw n.typeError(expected) }
        let items = try n.array()
        guard !items.isEmpty else { throw n.error("the argv array must not be empty") }
        var argv: [String] = []
        for item in items {
            let s = try item.string()
            guard !s.utf8.contains(0) else { throw item.error("must not contain a NUL byte") }
            argv.append(s)
        }
        guard !argv[0].isEmpty else { throw items[0].error("the program must not be empty") }
        return .argv(argv)
    }

    /// `"uid"`, `"uid:gid"` or a number; a lone uid also sets the gid to the same number.
    func user(_ n: JobJSONNode) throws -> (UInt32, UInt32) {
        let expected = "a uid like 1000 or \"1000:1000\""
        let maxID = Int64(UInt32.max) - 1  // (uid_t)-1 means "no change" to the kernel
        if n.stringValue == nil {
            let v = try n.integer(expected)
            guard (0...maxID).contains(v) else { throw n.error("uid \(v) is out of range 0...\(maxID)") }
            return (UInt32(v), UInt32(v))
        }
        let s = try n.string()
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        let ids = parts.map { p in p.allSatisfy { $0.isASCII && $0.isNumber } ? UInt32(p) : nil }
        guard (1...2).contains(parts.count), ids.allSatisfy({ $0 != nil && Int64($0!) <= maxID }) else {
            throw n.error("\(jsonQuoted(s)) is not a user: use numeric ids, \"uid\" or \"uid:gid\" (names are not looked up)")
        }
        return (ids[0]!, ids.count == 2 ? ids[1]! : ids[0]!)
    }

    /// Each entry a BuildKit `--mount` string or the same as an object, parsed by `MountSpec`.
    func mounts(_ n: JobJSONNode) throws -> [MountSpec] {
        var out: [MountSpec] = []
        for item in try n.array("an array of mounts") {
            do {
                if let s = item.stringValue {
                    out.append(try MountSpec.parse(buildKit: s, path: item.path))
                } else if let o = item.objectValue {
                    out.append(try MountSpec.parse(object: o, path: item.path))
                } else {
                    throw item.typeError("a mount string like \"type=cache,target=/root/.cache\" or a mount object")
                }
            } catch var e as JobValidationError {
                if e.file == nil { e.file = file }
                throw e
            }
        }
        return out
    }

    func reports(_ n: JobJSONNode) throws -> [String] {
        try n.array("an array of report globs").map { item in
            let s = try item.nonEmptyString("a glob like \"build/test-results/**/*.xml\"")
            guard !s.split(separator: "/").contains("..") else {
                throw item.error("\(jsonQuoted(s)) must not contain \"..\" components")
            }
            return s
        }
    }

    /// Test-step tmpfs entries: `"/workspace/.cache:size=16m"`, options `size` and `mode`.
    func tmpfsList(_ n: JobJSONNode) throws -> [MountSpec] {
        var targets: Set<String> = []
        return try n.array("an array like [\"/workspace/.cache:size=16m\"]").map { item in
            let s = try item.nonEmptyString("a tmpfs like \"/workspace/.cache:size=16m\"")
            let colon = s.firstIndex(of: ":")
            let target = try containerPath(item, String(s[..<(colon ?? s.endIndex)]))
            var size: UInt64?
            var mode: UInt32 = 0o1777
            if let colon {
                for option in s[s.index(after: colon)...].split(separator: ",", omittingEmptySubsequences: false) {
                    let kv = option.split(separator: "=", maxSplits: 1)
                    switch (kv.first.map(String.init), kv.count == 2 ? String(kv[1]) : nil) {
                    case ("size", let v?):
                        guard let bytes = JobByteSize.parse(v), bytes > 0 else {
                            throw item.error("tmpfs option size: " + JobByteSize.malformedMessage(v))
                        }
                        size = bytes
                    case ("mode", let v?):
                        guard let m = UInt32(v, radix: 8), m <= 0o7777 else {
                            throw item.error("tmpfs option mode: \(jsonQuoted(v)) is not an octal mode like 1777")
                        }
                        mode = m
                    default:
                        var message = "unknown tmpfs option \(jsonQuoted(String(option))): use size=N or mode=OCTAL"
                        if let k = kv.first, let guess = DidYouMean.suggestion(for: String(k), among: ["size", "mode"]), kv.count == 2 {
                            message += " (did you mean \(jsonQuoted(guess))?)"
                        }
                        throw item.error(message)
                    }
                }
            }
            guard targets.insert(target).inserted else { throw item.error("tmpfs \(jsonQuoted(target)) is listed twice") }
            return .tmpfs(target: target, size: size, mode: mode)
        }
    }
}
