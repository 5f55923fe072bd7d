import AgentSupport
import FoundationEssentials

/// Reading and writing `ImageConfigDocument` as JSON (JSONValue: sorted keys, compact).
extension ImageConfigDocument {
    /// Parses a config blob. `reference` and `digest` name it in errors.
    public static func parse(_ bytes: [UInt8], reference: String, digest: Digest) throws(ImageError) -> ImageConfigDocument {
        func bad(_ p: String) -> ImageError { .badManifest(reference: reference, digest: digest.description, problem: "config: " + p) }
        guard case .object(var obj)? = try? JSONValue.parse(bytes) else { throw bad("not a JSON object") }
        var c = ImageConfigDocument(architecture: obj.removeValue(forKey: "architecture")?.string ?? "",
                                    os: obj.removeValue(forKey: "os")?.string ?? "")
        c.variant = obj.removeValue(forKey: "variant")?.string
        c.created = obj.removeValue(forKey: "created")?.string
        c.author = obj.removeValue(forKey: "author")?.string
        guard case .object(var rootfs)? = obj.removeValue(forKey: "rootfs"), case .array(let ids)? = rootfs.removeValue(forKey: "diff_ids") else {
            throw bad("no rootfs.diff_ids")
        }
        for (i, v) in ids.enumerated() {
            guard let s = v.string, let d = Digest(s) else { throw bad("rootfs.diff_ids[\(i)] is not a sha256 digest") }
            c.diffIDs.append(d)
        }
        if case .array(let hs)? = obj.removeValue(forKey: "history") {
            for (i, h) in hs.enumerated() {
                guard case .object(let o) = h else { throw bad("history[\(i)] is not an object") }
                var e = HistoryEntry(created: o["created"]?.string, createdBy: o["created_by"]?.string,
                                     author: o["author"]?.string, comment: o["comment"]?.string)
                if case .bool(true)? = o["empty_layer"] { e.emptyLayer = true }
                c.history.append(e)
            }
        }
        if case .object(var cfg)? = obj.removeValue(forKey: "config") {
            c.user = cfg.removeValue(forKey: "User")?.string
            c.exposedPorts = keys(cfg.removeValue(forKey: "ExposedPorts"))
            c.env = cfg.removeValue(forKey: "Env")?.strings ?? []
            c.entrypoint = cfg.removeValue(forKey: "Entrypoint")?.strings
            c.cmd = cfg.removeValue(forKey: "Cmd")?.strings
            c.volumes = keys(cfg.removeValue(forKey: "Volumes"))
            c.workingDir = cfg.removeValue(forKey: "WorkingDir")?.string
            if case .object(let l)? = cfg.removeValue(forKey: "Labels") {
                for (k, v) in l { if let s = v.string { c.labels[k] = s } }
            }
            c.stopSignal = cfg.removeValue(forKey: "StopSignal")?.string
            c.shell = cfg.removeValue(forKey: "Shell")?.strings
            c.onBuild = cfg.removeValue(forKey: "OnBuild")?.strings
            if case .bool(let b)? = cfg.removeValue(forKey: "ArgsEscaped") { c.argsEscaped = b }
            if case .object(let h)? = cfg.removeValue(forKey: "Healthcheck") {
                c.healthcheck = Healthcheck(test: h["Test"]?.strings ?? [], interval: h["Interval"]?.integer,
                                            timeout: h["Timeout"]?.integer, startPeriod: h["StartPeriod"]?.integer,
                                            startInterval: h["StartInterval"]?.integer, retries: h["Retries"]?.integer)
            }
            // Docker writes these as null or empty; they carry nothing.
            for k in cfg.keys where cfg[k] == .null { cfg.removeValue(forKey: k) }
            c.unknownConfig = cfg
        }
        c.unknown = obj
        return c
    }

    /// The canonical JSON of the config (its blob): equal documents give equal bytes.
    public func serialized() -> [UInt8] { Array(jsonValue.serialized().utf8) }

    /// The digest of `serialized()`.
    public var digest: Digest { Digest(of: serialized()) }

    package var jsonValue: JSONValue {
        var cfg = unknownConfig
        func put(_ k: String, _ v: String?) { if let v { cfg[k] = .string(v) } }
        func put(_ k: String, _ v: [String]?) { if let v { cfg[k] = .array(v.map { .string($0) }) } }
        put("User", user)
        if !exposedPorts.isEmpty { cfg["ExposedPorts"] = Self.set(exposedPorts) }
        if !env.isEmpty { put("Env", env) }
        put("Entrypoint", entrypoint)
        put("Cmd", cmd)
        if !volumes.isEmpty { cfg["Volumes"] = Self.set(volumes) }
        put("WorkingDir", workingDir)
        if !labels.isEmpty { cfg["Labels"] = .object(labels.mapValues { .string($0) }) }
        put("StopSignal", stopSignal)
        put("Shell", shell)
        put("OnBuild", onBuild)
        if let argsEscaped { cfg["ArgsEscaped"] = .bool(argsEscaped) }
        if let h = healthcheck {
            var o: [String: JSONValue] = ["Test": .array(h.test.map { .string($0) })]
            for (k, v) in [("Interval", h.interval), ("Timeout", h.timeout), ("StartPeriod", h.startPeriod),
                           ("StartInterval", h.startInterval), ("Retries", h.retries)] {
                if let v { o[k] = v < 0 ? .signed(v) : .unsigned(UInt64(v)) }
            }
            cfg["Healthcheck"] = .object(o)
        }
        var obj = unknown
        obj["architecture"] = .string(architecture)
        obj["os"] = .string(os)
        if let variant { obj["variant"] = .string(variant) }
        if let created { obj["created"] = .string(created) }
        if let author { obj["author"] = .string(author) }
        obj["config"] = .object(cfg)
        obj["rootfs"] = .object(["type": .string("layers"), "diff_ids": .array(diffIDs.map { .string($0.description) })])
        if !history.isEmpty {
            obj["history"] = .array(history.map { h in
                var o: [String: JSONValue] = [:]
                if let v = h.created { o["created"] = .string(v) }
                if let v = h.createdBy { o["created_by"] = .string(v) }
                if let v = h.author { o["author"] = .string(v) }
                if let v = h.comment { o["comment"] = .string(v) }
                if h.emptyLayer { o["empty_layer"] = .bool(true) }
                return .object(o)
            })
        }
        return .object(obj)
    }

    /// `{"KEY": {}, ...}`, Docker's form of a set.
    static func set(_ items: [String]) -> JSONValue {
        .object(Dictionary(items.map { ($0, JSONValue.object([:])) }, uniquingKeysWith: { a, _ in a }))
    }

    static func keys(_ v: JSONValue?) -> [String] {
        guard case .object(let o)? = v else { return [] }
        return o.keys.sorted()
    }
}

extension JSONValue {
    var integer: Int64? {
        switch self {
        case .unsigned(let u): return Int64(clamping: u)
        case .signed(let s): return s
        case .double(let d): return Int64(exactly: d.rounded(.towardZero))
        default: return nil
        }
    }
}
