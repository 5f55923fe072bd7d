import AgentSupport
import FoundationEssentials
import Glibc
import Images
import Sandbox

/// `services[]`: GitLab's service keys (`name`, `alias`, `entrypoint`, `command`,
/// `variables`) plus `user`, `healthcheck`, `allow_unhealthy` and `secrets`.
extension JobDocumentParser {
    static let serviceKeys = [
        "name", "alias", "entrypoint", "command", "variables", "user", "healthcheck", "allow_unhealthy", "secrets",
    ]
    static let healthcheckKeys = ["tcp", "cmd", "timeout", "interval"]
    static let serviceSecretKeys = ["id", "env", "target"]

    /// `secrets` are the job's declared secret ids: a service may only name those.
    func services(_ n: JobJSONNode, secrets: [String: SecretSpec]) throws -> [ServiceSpec] {
        let items = try n.array("an array of services")
        guard items.count <= ServiceSpec.maximumCount else {
            throw n.error("at most \(ServiceSpec.maximumCount) services per job, got \(items.count)")
        }
        return try items.map { try service($0, secrets: secrets) }
    }

    func service(_ n: JobJSONNode, secrets: [String: SecretSpec]) throws -> ServiceSpec {
        // The short form: the image (or "host"), everything else defaulted.
        if let s = n.stringValue {
            let name = try serviceName(n, s)
            guard case .image = name else {
                throw n.error("a \(jsonQuoted(s)) service needs an object with \"alias\" and \"command\"")
            }
            return ServiceSpec(name: name, aliases: [try defaultAlias(n, name)])
        }
        guard n.objectValue != nil else { throw n.typeError("an image reference or a service object with \"name\"") }
        let obj = try n.object()
        try obj.checkKeys(allowed: Self.serviceKeys, required: ["name"])
        let nameNode = obj["name"]!
        let name: JobSpec.Image
        if let s = nameNode.stringValue { name = try serviceName(nameNode, s) } else { name = try image(nameNode) }
        var spec = ServiceSpec(name: name, aliases: [])
        if let v = obj["alias"] {
            if v.stringValue != nil {
                spec.aliases = [try alias(v)]
            } else {
                let list = try v.array("an alias string or an array of them")
                guard !list.isEmpty else { throw v.error("must contain at least one alias") }
                guard list.count <= ServiceSpec.maximumAliases else {
                    throw v.error("at most \(ServiceSpec.maximumAliases) aliases per service, got \(list.count)")
                }
                spec.aliases = try list.map { try alias($0) }
            }
        } else {
            spec.aliases = [try defaultAlias(nameNode, name)]
        }
        if let v = obj["entrypoint"] { spec.entrypoint = try argv(v) }
        if let v = obj["command"] { spec.command = try argv(v) }
        if let v = obj["variables"] { spec.variables = try env(v) }
        if let v = obj["user"] { (spec.uid, spec.gid) = try user(v); spec.userGiven = true }
        if let v = obj["healthcheck"] { try healthcheck(v, into: &spec) }
        if let v = obj["allow_unhealthy"] { spec.allowUnhealthy = try v.bool() }
        if let v = obj["secrets"] { spec.secrets = try serviceSecrets(v, declared: secrets) }
        // Nothing to fall back on: the host and a folder have no image config.
        if case .image = name {} else if spec.entrypoint == nil && spec.command == nil {
            throw n.error("a \(jsonQuoted(spec.displayName)) service needs a \"command\" (it has no image to take one from)")
        }
        return spec
    }

    /// `"host"` or an image reference (parsed only; admission decides whether it may run).
    func serviceName(_ n: JobJSONNode, _ s: String) throws -> JobSpec.Image {
        if s == "host" { return .host }
        guard !s.isEmpty else { throw n.error("must not be empty") }
        do { return .image(try ImageSource.parse(s)) } catch { throw n.error("\(error)") }
    }

    /// GitLab's default alias: the image's last path component without tag or digest
    /// (`postgres:15` → `postgres`, `registry.example/x/my_db` → `my-db`), lowercased
    /// with `_` as `-` so it is a DNS name.
    func defaultAlias(_ n: JobJSONNode, _ name: JobSpec.Image) throws -> String {
        guard case .image(.registry(let ref)) = name else {
            throw n.error("a service on \(name == .host ? "\"host\"" : "a rootfs or local image") needs an \"alias\"")
        }
        let last = ref.repository.split(separator: "/").last.map(String.init) ?? ref.repository
        let derived = last.lowercased().replacing("_", with: "-")
        guard Self.isValidAlias(derived) else {
            throw n.error("the default alias \(jsonQuoted(derived)) is not a valid host name; set \"alias\"")
        }
        return derived
    }

    func alias(_ n: JobJSONNode) throws -> String {
        let s = try n.nonEmptyString("an alias (a host name like \"db\")")
        guard s.utf8.count <= ServiceSpec.maximumAliasBytes else {
            throw n.error("an alias is at most \(ServiceSpec.maximumAliasBytes) bytes long, got \(s.utf8.count)")
        }
        guard Self.isValidAlias(s) else {
            throw n.error("\(jsonQuoted(s)) is not a valid alias: use a host name (letters, digits and -, labels joined by .)")
        }
        return s.lowercased()
    }

    /// A DNS name: labels of letters, digits and `-` (not first or last), joined by `.`; the
    /// last label not all digits (`10.0.2.2` is an address, not a name to resolve).
    static func isValidAlias(_ s: String) -> Bool {
        guard (1...ServiceSpec.maximumAliasBytes).contains(s.utf8.count) else { return false }
        let labels = s.split(separator: ".", omittingEmptySubsequences: false)
        if let last = labels.last, last.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) { return false }
        return labels.allSatisfy { label in
            guard let first = label.utf8.first, let last = label.utf8.last, first != 0x2D, last != 0x2D else { return false }
            return label.utf8.allSatisfy { b in
                (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2D
            }
        }
    }

    /// A non-empty array of strings (GitLab's `entrypoint` and `command` are arrays).
    func argv(_ n: JobJSONNode) throws -> [String] {
        let items = try n.array("an array of strings like [\"postgres\", \"-c\", \"fsync=off\"]")
        guard !items.isEmpty else { throw n.error("must not be empty") }
        return try items.map { item in
            let s = try item.string()
            guard !s.utf8.contains(0) else { throw item.error("must not contain a NUL byte") }
            return s
        }
    }

    func healthcheck(_ n: JobJSONNode, into spec: inout ServiceSpec) throws {
        let obj = try n.object("an object like {\"tcp\": 5432} or {\"cmd\": [\"pg_isready\"]}")
        try obj.checkKeys(allowed: Self.healthcheckKeys)
        if obj["tcp"] != nil && obj["cmd"] != nil { throw n.error("give either \"tcp\" or \"cmd\", not both") }
        if let v = obj["tcp"] {
            let port = try v.integer("a TCP port number")
            guard (1...65535).contains(port) else { throw v.error("port \(port) is out of range 1...65535") }
            spec.healthcheck = .tcp(UInt16(port))
        }
        if let v = obj["cmd"] { spec.healthcheck = .cmd(try argv(v)) }
        if let v = obj["timeout"] { spec.healthTimeout = try positive(v) }
        if let v = obj["interval"] {
            spec.healthInterval = try positive(v)
            // Each poll starts a process (a probe) or a container (a command).
            guard spec.healthInterval >= ServiceSpec.minimumHealthInterval else {
                throw v.error("must be at least \(JobDuration.format(ServiceSpec.minimumHealthInterval))")
            }
        }
    }

    private func positive(_ n: JobJSONNode) throws -> Duration {
        let d = try duration(n)
        guard d > .zero else { throw n.error("must be greater than zero") }
        return d
    }

    /// `"ID"` (a file at /run/secrets/ID) or `{"id": ID, "env": VAR}` / `{"id": ID, "target": PATH}`.
    func serviceSecrets(_ n: JobJSONNode, declared: [String: SecretSpec]) throws -> [ServiceSecret] {
        var seen: Set<String> = []
        return try n.array("an array of secret ids or {\"id\": ..., \"env\": ...} objects").map { item in
            var secret: ServiceSecret
            let idNode: JobJSONNode
            if item.stringValue != nil {
                idNode = item
                secret = ServiceSecret(id: try item.string())
            } else {
                let o = try item.object("a secret id or an object like {\"id\": \"pg\", \"env\": \"POSTGRES_PASSWORD\"}")
                try o.checkKeys(allowed: Self.serviceSecretKeys, required: ["id"])
                idNode = o["id"]!
                secret = ServiceSecret(id: try idNode.string())
                if o["env"] != nil && o["target"] != nil { throw item.error("give either \"env\" or \"target\", not both") }
                if let v = o["env"] {
                    let name = try v.nonEmptyString()
                    guard JobParser.isValidEnvName(name) else {
                        throw v.error("\(jsonQuoted(name)) is not a valid environment variable name")
                    }
                    secret.env = name
                }
                if let v = o["target"] { secret.target = try containerPath(v, try v.nonEmptyString("an absolute path")) }
            }
            guard JobParser.isValidName(secret.id) else {
                throw idNode.error("\(jsonQuoted(secret.id)) is not a valid secret id: \(JobParser.nameRule)")
            }
            guard declared[secret.id] != nil else {
                throw idNode.error("secret \(jsonQuoted(secret.id)) is not declared in the job's \"secrets\"")
            }
            let key = secret.env.map { "env " + $0 } ?? "file " + (secret.target ?? "/run/secrets/" + secret.id)
            guard seen.insert(key).inserted else { throw item.error("\(key) is given twice") }
            return secret
        }
    }

    /// Rules across services and steps, once both are parsed: unique aliases that are not
    /// `localhost` or the steps' host name, one claim per TCP port, and one network for
    /// the whole job (the pod the services live in).
    func checkServices(_ spec: JobSpec, _ obj: JobJSONObject) throws {
        guard !spec.services.isEmpty else { return }
        let reserved = ["localhost", "host.agent.internal", String(spec.id.prefix(63)).lowercased()]
        var owner: [String: Int] = [:]
        var ports: [UInt16: Int] = [:]
        for (i, service) in spec.services.enumerated() {
            let path = "services[\(i)]"
            for a in service.aliases {
                if reserved.contains(a) {
                    let why = a == reserved[2] ? "the steps' host name (the job id)" : "a name every container resolves itself"
                    throw JobValidationError(file: file, path: path + ".alias", message: "\(jsonQuoted(a)) is \(why); choose another alias")
                }
                if let first = owner[a] {
                    throw JobValidationError(file: file, path: path + ".alias",
                                             message: "\(jsonQuoted(a)) is used by " + (first == i ? "this service twice" : "services[\(first)]"))
                }
                owner[a] = i
            }
            if case .tcp(let port) = service.healthcheck {
                if let first = ports[port] {
                    throw JobValidationError(file: file, path: path + ".healthcheck.tcp",
                                             message: "port \(port) is also claimed by services[\(first)] (services share one network)")
                }
                ports[port] = i
            }
        }
        if spec.network == .host {
            throw JobValidationError(file: file, path: "network", message:
                "\"host\" cannot be used with services: they run in the job's own network (use \"none\" or \"outbound\")")
        }
        for (i, step) in spec.steps.enumerated() {
            guard let mode = step.network, mode != spec.network else { continue }
            let why = mode == .host ? "the host network cannot reach the job's services"
                : "with services every step shares the job's network (\(jsonQuoted(spec.network.rawValue)))"
            throw JobValidationError(file: file, path: "steps[\(i)].network", message: "\(jsonQuoted(mode.rawValue)): \(why)")
        }
    }
}
