import AgentSupport
import FoundationEssentials

/// Media types of the OCI image spec and Docker's schema 2.
public enum MediaType {
    public static let ociManifest = "application/vnd.oci.image.manifest.v1+json"
    public static let ociIndex = "application/vnd.oci.image.index.v1+json"
    public static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
    public static let dockerList = "application/vnd.docker.distribution.manifest.list.v2+json"
    static let dockerSchema1 = ["application/vnd.docker.distribution.manifest.v1+json",
                                "application/vnd.docker.distribution.manifest.v1+prettyjws"]
    static let configs = ["application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"]
    /// Every manifest type asked for in Accept (a registry answers 404 for an OCI
    /// manifest that was not asked for).
    static let accept = [ociManifest, ociIndex, dockerManifest, dockerList]

    /// The layer types that can be unpacked (compression is detected from the content).
    static func isLayer(_ t: String) -> Bool {
        let base = t.replacing(".nondistributable", with: "")
        return ["application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.v1.tar+gzip",
                "application/vnd.oci.image.layer.v1.tar+zstd", "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"].contains(base)
    }
}

/// A content descriptor: what a manifest says of a blob.
public struct Descriptor: Sendable, Equatable {
    public var mediaType: String
    public var digest: Digest
    public var size: Int64
    /// Index entries only.
    public var os: String?
    public var architecture: String?
    public var variant: String?

    public init(mediaType: String, digest: Digest, size: Int64, os: String? = nil, architecture: String? = nil, variant: String? = nil) {
        self.mediaType = mediaType; self.digest = digest; self.size = size
        self.os = os; self.architecture = architecture; self.variant = variant
    }
}

/// A parsed manifest or index.
public enum ManifestDocument: Sendable {
    case index([Descriptor])
    case manifest(config: Descriptor, layers: [Descriptor])

    /// Parses `bytes` with the media type from Content-Type (or the document's own
    /// `mediaType`). `where` names it in errors.
    public static func parse(_ bytes: [UInt8], contentType: String?, reference: String,
                             digest: Digest) throws(ImageError) -> ManifestDocument {
        func bad(_ p: String) -> ImageError { .badManifest(reference: reference, digest: digest.description, problem: p) }
        guard case .object(let obj)? = try? JSONValue.parse(bytes) else { throw bad("not a JSON object") }
        let declared = obj["mediaType"]?.string
        let type = contentType.flatMap { $0.split(separator: ";").first.map { $0.trimmingCharacters(in: " ") } }
            .flatMap { $0 == "application/json" || $0.isEmpty ? nil : $0 } ?? declared
        if case .unsigned(1)? = obj["schemaVersion"] { throw bad("Docker schema 1 manifests are not supported") }
        if let t = type, MediaType.dockerSchema1.contains(t) { throw bad("Docker schema 1 manifests are not supported") }
        let isIndex = type == MediaType.ociIndex || type == MediaType.dockerList || (type == nil && obj["manifests"] != nil)
        if isIndex {
            guard case .array(let items)? = obj["manifests"] else { throw bad("an index without \"manifests\"") }
            return .index(try items.map { v throws(ImageError) in try descriptor(v, bad) })
        }
        guard type == nil || type == MediaType.ociManifest || type == MediaType.dockerManifest else {
            throw bad("unknown media type \(jsonish(type ?? ""))")
        }
        guard let c = obj["config"] else { throw bad("no \"config\"") }
        let config = try descriptor(c, bad)
        guard MediaType.configs.contains(config.mediaType) else {
            throw bad("unknown config media type \(jsonish(config.mediaType))")
        }
        guard case .array(let ls)? = obj["layers"] else { throw bad("no \"layers\"") }
        let layers = try ls.map { v throws(ImageError) in try descriptor(v, bad) }
        for l in layers where !MediaType.isLayer(l.mediaType) {
            throw bad("layer \(l.digest) has unknown media type \(jsonish(l.mediaType))")
        }
        return .manifest(config: config, layers: layers)
    }

    static func descriptor(_ v: JSONValue, _ bad: (String) -> ImageError) throws(ImageError) -> Descriptor {
        guard case .object(let o) = v, let t = o["mediaType"]?.string, let ds = o["digest"]?.string,
              case .unsigned(let size)? = o["size"] else { throw bad("a descriptor without mediaType, digest and size") }
        guard let d = Digest(ds) else { throw bad("\(jsonish(ds)) is not a sha256 digest") }
        var out = Descriptor(mediaType: t, digest: d, size: Int64(clamping: size))
        if case .object(let p)? = o["platform"] {
            out.os = p["os"]?.string
            out.architecture = p["architecture"]?.string
            out.variant = p["variant"]?.string
        }
        return out
    }
}

/// What the image config says of how to run it, and its layers' diff_ids.
public struct ImageConfig: Sendable, Equatable {
    public var env: [String] = []
    public var user: String?
    public var workingDir: String?
    public var entrypoint: [String] = []
    public var cmd: [String] = []
    /// `ExposedPorts` keys (`5432/tcp`), sorted (a job's services wait for them).
    public var exposedPorts: [String] = []
    /// `Healthcheck.Test` (Docker's extension): `["CMD", ...]`, `["CMD-SHELL", cmd]` or `["NONE"]`.
    public var healthcheckTest: [String]?
    public var diffIDs: [Digest] = []
    public var os: String?
    public var architecture: String?

    public static func parse(_ bytes: [UInt8], reference: String, digest: Digest) throws(ImageError) -> ImageConfig {
        func bad(_ p: String) -> ImageError { .badManifest(reference: reference, digest: digest.description, problem: "config: " + p) }
        guard case .object(let obj)? = try? JSONValue.parse(bytes) else { throw bad("not a JSON object") }
        var c = ImageConfig()
        c.os = obj["os"]?.string
        c.architecture = obj["architecture"]?.string
        guard case .object(let rootfs)? = obj["rootfs"], case .array(let ids)? = rootfs["diff_ids"] else {
            throw bad("no rootfs.diff_ids")
        }
        for v in ids {
            guard let s = v.string, let d = Digest(s) else { throw bad("a diff_id is not a sha256 digest") }
            c.diffIDs.append(d)
        }
        if case .object(let cfg)? = obj["config"] {
            c.env = cfg["Env"]?.strings ?? []
            c.user = cfg["User"]?.string.flatMap { $0.isEmpty ? nil : $0 }
            c.workingDir = cfg["WorkingDir"]?.string.flatMap { $0.isEmpty ? nil : $0 }
            c.entrypoint = cfg["Entrypoint"]?.strings ?? []
            c.cmd = cfg["Cmd"]?.strings ?? []
            if case .object(let ports)? = cfg["ExposedPorts"] { c.exposedPorts = ports.keys.sorted() }
            if case .object(let hc)? = cfg["Healthcheck"] { c.healthcheckTest = hc["Test"]?.strings }
        }
        return c
    }
}

/// The Go-style architecture name of this machine, as image platforms write it.
public let hostArchitecture: String = {
    #if arch(x86_64)
    return "amd64"
    #elseif arch(arm64)
    return "arm64"
    #else
    return "unknown"
    #endif
}()

extension JSONValue {
    var string: String? { if case .string(let s) = self { return s }; return nil }
    var strings: [String]? {
        guard case .array(let a) = self else { return nil }
        return a.compactMap { $0.string }
    }
}
