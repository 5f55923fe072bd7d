import AgentSupport
import FoundationEssentials
import Glibc
import Images

/// The job-level settings around the steps: image, workspace, resources, cache scope, secrets.
extension JobDocumentParser {
    func image(_ n: JobJSONNode) throws -> JobSpec.Image {
        let hint = "\"host\", an image reference or {\"rootfs\": \"PATH\"}"
        if let s = n.stringValue {
            if s == "host" { return .host }
            // Parsed only: whether the job may use it is the admission step's decision.
            do { return .image(try ImageSource.parse(s)) } catch { throw n.error("\(error)") }
        }
        guard n.objectValue != nil else { throw n.typeError(hint) }
        let obj = try n.object()
        try obj.checkKeys(allowed: ["rootfs"], required: ["rootfs"])
        let rootfsNode = obj["rootfs"]!
        // Kept as written: the admission step opens it beneath what the operator granted.
        return .rootfs(try rootfsNode.nonEmptyString("a path to a root filesystem folder"))
    }

    /// The source folder, as written. Nothing is looked up here: a job's paths touch the
    /// file system only in the admission step, beneath what the operator granted.
    func workspace(_ n: JobJSONNode) throws -> String {
        try n.nonEmptyString("a path to the source folder")
    }

    func resources(_ n: JobJSONNode) throws -> JobSpec.Resources {
        let obj = try n.object()
        try obj.checkKeys(allowed: ["pids", "nofile", "fsize", "memory"])
        var r = JobSpec.Resources()
        if let v = obj["pids"] { r.pids = try count(v) }
        if let v = obj["nofile"] { r.nofile = try count(v) }
        if let v = obj["fsize"] { r.fsize = try size(v) }
        if let v = obj["memory"] { r.memory = try size(v) }
        return r
    }

    /// A positive whole number (a process or file-descriptor count).
    private func count(_ n: JobJSONNode) throws -> UInt64 {
        let v = try n.integer("a positive whole number")
        guard v > 0 else { throw n.error("must be greater than zero, got \(v)") }
        return UInt64(v)
    }

    /// Bytes as a number, or a size string like `"512m"`.
    func size(_ n: JobJSONNode) throws -> UInt64 {
        let expected = "a size like \"512m\" or a number of bytes"
        if n.stringValue != nil {
            let s = try n.string()
            guard let v = JobByteSize.parse(s) else { throw n.error(JobByteSize.malformedMessage(s)) }
            guard v > 0 else { throw n.error("must be greater than zero") }
            return v
        }
        let v = try n.integer(expected)
        guard v > 0 else { throw n.error("must be greater than zero, got \(v)") }
        return UInt64(v)
    }

    /// `{"scope": NAME}` → the scope the job asks for. Not used as the scope: the operator
    /// grants one (`--cache-scope`), and `ScopeGrant` refuses a job asking for another.
    func cache(_ n: JobJSONNode) throws -> String {
        let obj = try n.object("an object like {\"scope\": \"NAME\"}")
        try obj.checkKeys(allowed: ["scope"], required: ["scope"])
        let scopeNode = obj["scope"]!
        let scope = try scopeNode.string()
        guard JobParser.isValidName(scope) else {
            throw scopeNode.error("\(jsonQuoted(scope)) is not a valid cache scope: \(JobParser.nameRule)")
        }
        return scope
    }

    /// `{"ID": {"required": bool}}`: the secret ids the job uses. A `file` or `env` key is
    /// refused with its own message: the job file is untrusted (a fork can write it), and
    /// letting it pick a source would let it read any file or variable of the agent.
    func secrets(_ n: JobJSONNode) throws -> [String: SecretSpec] {
        let obj = try n.object("an object of secrets by id")
        var out: [String: SecretSpec] = [:]
        for (id, node) in obj.members {
            guard JobParser.isValidName(id) else {
                throw node.error("\(jsonQuoted(id)) is not a valid secret id: \(JobParser.nameRule)")
            }
            let s = try node.object("an object like {\"required\": true}")
            for key in ["file", "env"] {
                guard let source = s[key] else { continue }
                let flag = key == "file" ? "src=FILE" : "env=VAR"
                throw source.error("a job cannot choose where a secret comes from; the operator provides it "
                    + "(--secret id=\(id),\(flag) on run-job/watch, or \"secrets\" in the agent policy)")
            }
            try s.checkKeys(allowed: ["required"])
            var spec = SecretSpec()
            if let r = s["required"] { spec.required = try r.bool() }
            out[id] = spec
        }
        return out
    }
}
