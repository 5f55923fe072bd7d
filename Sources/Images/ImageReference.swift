import FoundationEssentials

/// Where an image comes from, as a job (`"image": "REF"`), `agent exec --image REF` or an
/// `agent image` command names it. Parsing touches nothing: no file, no network.
public enum ImageSource: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// A registry reference, normalised as Docker does (`alpine` is `docker.io/library/alpine:latest`).
    case registry(ImageReference)
    /// `oci:DIR[:TAG]`: an OCI image layout folder.
    case ociLayout(path: String, tag: String?)
    /// `oci-archive:FILE`: a tar of an OCI image layout.
    case ociArchive(path: String)
    /// `docker-archive:FILE`: a `docker save` tar.
    case dockerArchive(path: String)

    /// Parses `text`: a transport prefix (`oci:`, `oci-archive:`, `docker-archive:`) makes
    /// it a local source, anything else is a registry reference.
    public static func parse(_ text: String) throws(ImageReferenceError) -> ImageSource {
        if let rest = text.dropPrefix("oci:") {
            guard !rest.isEmpty else { throw ImageReferenceError(text, "oci: needs a folder (oci:DIR[:TAG])") }
            // The tag is after the last ':' unless that ':' is inside the folder's path.
            if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("/") {
                let tag = String(rest[rest.index(after: colon)...])
                let dir = String(rest[..<colon])
                guard !dir.isEmpty, ImageReference.isValidTag(tag) else {
                    throw ImageReferenceError(text, "\(jsonish(tag)) is not a valid tag")
                }
                return .ociLayout(path: dir, tag: tag)
            }
            return .ociLayout(path: rest, tag: nil)
        }
        if let rest = text.dropPrefix("oci-archive:") {
            guard !rest.isEmpty else { throw ImageReferenceError(text, "oci-archive: needs a file") }
            return .ociArchive(path: rest)
        }
        if let rest = text.dropPrefix("docker-archive:") {
            guard !rest.isEmpty else { throw ImageReferenceError(text, "docker-archive: needs a file") }
            return .dockerArchive(path: rest)
        }
        return .registry(try ImageReference.parse(text))
    }

    public var description: String {
        switch self {
        case .registry(let r): return r.description
        case .ociLayout(let p, let t): return "oci:" + p + (t.map { ":" + $0 } ?? "")
        case .ociArchive(let p): return "oci-archive:" + p
        case .dockerArchive(let p): return "docker-archive:" + p
        }
    }

    /// `oci`, `oci-archive`, `docker-archive`, or `docker` for a registry reference.
    public var transport: String {
        switch self {
        case .registry: return "docker"
        case .ociLayout: return "oci"
        case .ociArchive: return "oci-archive"
        case .dockerArchive: return "docker-archive"
        }
    }

    /// The tag of `oci:DIR:TAG`.
    public var localTag: String? {
        if case .ociLayout(_, let t) = self { return t }
        return nil
    }
}

/// A registry image reference, fully qualified: registry host[:port], repository, and a
/// tag or a digest (or both; the digest then decides).
public struct ImageReference: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// `docker.io`, `ghcr.io`, `127.0.0.1:5000`, ...
    public var registry: String
    /// `library/alpine`, `org/team/tool`.
    public var repository: String
    public var tag: String?
    public var digest: Digest?

    public init(registry: String, repository: String, tag: String? = nil, digest: Digest? = nil) {
        self.registry = registry
        self.repository = repository
        self.tag = tag
        self.digest = digest
    }

    /// The Docker Hub's canonical name, and the host its API really answers on.
    public static let dockerHub = "docker.io"
    static let dockerHubAPI = "registry-1.docker.io"

    /// Docker's rules: the first component names a registry when it has a `.` or `:` or is
    /// `localhost`; else the image is on Docker Hub, where a one-component name is in
    /// `library/`. No tag and no digest means `:latest`.
    public static func parse(_ text: String) throws(ImageReferenceError) -> ImageReference {
        guard !text.isEmpty, text.utf8.count <= 4096 else { throw ImageReferenceError(text, "empty or too long") }
        var rest = Substring(text)
        var digest: Digest?
        if let at = rest.firstIndex(of: "@") {
            let d = String(rest[rest.index(after: at)...])
            guard let parsed = Digest(d) else {
                throw ImageReferenceError(text, "\(jsonish(d)) is not a digest (sha256: and 64 lowercase hex digits)")
            }
            digest = parsed
            rest = rest[..<at]
        }
        var tag: String?
        let lastSlash = rest.lastIndex(of: "/")
        if let colon = rest.lastIndex(of: ":"), lastSlash.map({ colon > $0 }) ?? true {
            let t = String(rest[rest.index(after: colon)...])
            guard isValidTag(t) else {
                throw ImageReferenceError(text, "\(jsonish(t)) is not a valid tag ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})")
            }
            tag = t
            rest = rest[..<colon]
        }
        var parts = rest.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        var registry = dockerHub
        if parts.count > 1, parts[0].contains(".") || parts[0].contains(":") || parts[0] == "localhost" {
            registry = parts.removeFirst()
            guard isValidHost(registry) else { throw ImageReferenceError(text, "\(jsonish(registry)) is not a valid registry host") }
        }
        if registry == "index.docker.io" { registry = dockerHub }
        if registry == dockerHub && parts.count == 1 { parts.insert("library", at: 0) }
        for p in parts where !isValidComponent(p) {
            throw ImageReferenceError(text, "\(jsonish(p)) is not a valid repository name component "
                + "(lowercase letters and digits, separated by '.', '_', '__' or '-')")
        }
        if tag == nil && digest == nil { tag = "latest" }
        return ImageReference(registry: registry, repository: parts.joined(separator: "/"), tag: tag, digest: digest)
    }

    /// `registry/repository[:tag][@digest]`.
    public var description: String {
        registry + "/" + repository + (tag.map { ":" + $0 } ?? "") + (digest.map { "@" + $0.description } ?? "")
    }

    /// What the manifest is fetched by: the digest when given, else the tag.
    public var manifestReference: String { digest?.description ?? tag ?? "latest" }

    /// The host (and port) the registry's API answers on.
    public var apiHost: String { registry == Self.dockerHub ? Self.dockerHubAPI : registry }

    /// The host without its port, for policy checks (`[::1]:5000` → `::1`).
    public var hostName: String {
        var h = Substring(registry)
        if h.hasPrefix("[") , let end = h.firstIndex(of: "]") { return String(h[h.index(after: h.startIndex)..<end]) }
        if let colon = h.lastIndex(of: ":") { h = h[..<colon] }
        return String(h)
    }

    /// A loopback registry (`localhost`, `127.0.0.0/8`, `::1`): plain HTTP by default, as Docker does.
    public var isLoopback: Bool {
        let h = hostName
        return h == "localhost" || h == "::1" || h.hasPrefix("127.")
    }

    static func isValidTag(_ t: String) -> Bool {
        let u = Array(t.utf8)
        guard !u.isEmpty, u.count <= 128 else { return false }
        func word(_ c: UInt8) -> Bool { isAlnum(c) || c == UInt8(ascii: "_") }
        return word(u[0]) && u.allSatisfy { word($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }

    static func isValidComponent(_ p: String) -> Bool {
        let u = Array(p.utf8)
        guard !u.isEmpty, u.count <= 255 else { return false }
        func lowerAlnum(_ c: UInt8) -> Bool { (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) }
        guard lowerAlnum(u.first!), lowerAlnum(u.last!) else { return false }
        // Separators: one '.', one or two '_', or any number of '-', always between alnum runs.
        var i = 0
        while i < u.count {
            if lowerAlnum(u[i]) { i += 1; continue }
            var j = i
            while j < u.count && !lowerAlnum(u[j]) { j += 1 }
            let sep = String(decoding: u[i..<j], as: UTF8.self)
            guard sep == "." || sep == "_" || sep == "__" || sep.allSatisfy({ $0 == "-" }) else { return false }
            i = j
        }
        return true
    }

    static func isValidHost(_ h: String) -> Bool {
        let u = Array(h.utf8)
        guard !u.isEmpty, u.count <= 255 else { return false }
        return u.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ":")
            || $0 == UInt8(ascii: "[") || $0 == UInt8(ascii: "]") }
    }
}

/// A reference that cannot be parsed; names the text and what is wrong with it.
public struct ImageReferenceError: Error, Equatable, CustomStringConvertible {
    public var reference: String
    public var problem: String
    init(_ reference: String, _ problem: String) {
        self.reference = reference
        self.problem = problem
    }
    public var description: String { "\(jsonish(reference)) is not a valid image reference: \(problem)" }
}

func isAlnum(_ c: UInt8) -> Bool {
    (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39)
}

/// A quoted string for messages (the value as the user wrote it).
func jsonish(_ s: String) -> String { "\"" + s + "\"" }

extension String {
    func dropPrefix(_ p: String) -> String? { hasPrefix(p) ? String(dropFirst(p.count)) : nil }
}
