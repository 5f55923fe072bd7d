import AgentSupport
import FoundationEssentials
import Glibc

/// Registry credentials, from the operator only (never from a job): the file named by
/// `$REGISTRY_AUTH_FILE`, else `~/.docker/config.json`, in Docker's format
/// (`{"auths": {"HOST[:PORT]": {"auth": base64("user:password")}}}`), and the credential
/// helpers it names (`credHelpers` per registry, `credsStore` for the rest).
/// Order for a registry: its `credHelpers` entry, then its `auths` entry, then `credsStore`.
public struct RegistryCredentials: Sendable, Equatable {
    public var auths: [String: Login] = [:]
    /// `credHelpers`: registry → helper name (`docker-credential-NAME`).
    public var helpers: [String: String] = [:]
    /// `credsStore`: the helper for registries without an entry of their own.
    public var store: String?
    /// Where helpers are looked for: the agent's `PATH`.
    public var searchPath = "/usr/local/bin:/usr/bin:/bin"

    public struct Login: Sendable, Equatable {
        public var user: String
        public var password: String
        public init(user: String, password: String) { self.user = user; self.password = password }
    }

    public init(auths: [String: Login] = [:]) { self.auths = auths }

    /// Reads the operator's file; a missing one means no credentials, a malformed one
    /// is an error naming it.
    public static func load(environment: [String: String]) throws(ImageError) -> RegistryCredentials {
        guard let (path, explicit) = filePath(environment: environment) else { return RegistryCredentials() }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            // No file: no logins. The default file in a HOME that is not ours (sudo, setpriv)
            // is not a reason to fail; a file the operator named is.
            if errno == ENOENT || errno == ENOTDIR || (!explicit && errno == EACCES) { return RegistryCredentials() }
            throw .store(path: path, operation: "open registry credentials", errno: errno)
        }
        defer { close(fd) }
        guard let bytes = readUpTo(fd, limit: 1 << 20) else { throw .store(path: path, operation: "read", errno: errno) }
        var out = try parse(bytes, file: path)
        if let p = environment["PATH"], !p.isEmpty { out.searchPath = p }
        return out
    }

    /// `$REGISTRY_AUTH_FILE`, else `$HOME/.docker/config.json` (`explicit`: the operator named it).
    public static func filePath(environment: [String: String]) -> (path: String, explicit: Bool)? {
        if let p = environment["REGISTRY_AUTH_FILE"], !p.isEmpty { return (p, true) }
        if let home = environment["HOME"], !home.isEmpty { return (home + "/.docker/config.json", false) }
        return nil
    }

    static func parse(_ bytes: [UInt8], file: String) throws(ImageError) -> RegistryCredentials {
        guard case .object(let root)? = try? JSONValue.parse(bytes) else {
            throw .unsupported(reference: file, problem: "registry credentials: not a JSON object")
        }
        var out = RegistryCredentials()
        if case .object(let helpers)? = root["credHelpers"] {
            for (key, v) in helpers { if let name = v.string { out.helpers[normalise(key)] = name } }
        }
        if let name = root["credsStore"]?.string, !name.isEmpty { out.store = name }
        guard case .object(let auths)? = root["auths"] else { return out }
        for (key, v) in auths {
            guard case .object(let entry) = v, let b64 = entry["auth"]?.string,
                  let data = Data(base64Encoded: b64) else { continue }
            let text = String(decoding: data, as: UTF8.self)
            guard let colon = text.firstIndex(of: ":") else { continue }
            out.auths[normalise(key)] = Login(user: String(text[..<colon]), password: String(text[text.index(after: colon)...]))
        }
        return out
    }

    /// Docker writes keys as `host`, `https://host/` or `https://index.docker.io/v1/`.
    static func normalise(_ key: String) -> String {
        var k = Substring(key)
        for p in ["https://", "http://"] where k.hasPrefix(p) { k = k.dropFirst(p.count) }
        if let slash = k.firstIndex(of: "/") { k = k[..<slash] }
        return k == "index.docker.io" || k == "registry-1.docker.io" ? ImageReference.dockerHub : String(k)
    }

    /// The stored login for `registry` (the file's `auths` only; see `resolveLogin`).
    public func login(for registry: String) -> Login? { auths[Self.normalise(registry)] }

    /// The login for `registry` in the documented order, running a credential helper
    /// when one applies.
    public func resolveLogin(for registry: String) throws(ImageError) -> Login? {
        let key = Self.normalise(registry)
        if let name = helpers[key] { return try CredentialHelper(name: name, searchPath: searchPath).get(key) }
        if let l = auths[key] { return l }
        if let name = store { return try CredentialHelper(name: name, searchPath: searchPath).get(key) }
        return nil
    }
}

/// A `WWW-Authenticate` challenge: `Basic realm="x"` or
/// `Bearer realm="https://auth/token",service="registry",scope="repository:x:pull"`.
struct AuthChallenge: Equatable {
    var scheme: String
    var parameters: [String: String]

    static func parse(_ header: String) -> AuthChallenge? {
        let trimmed = header.trimmingCharacters(in: " ")
        guard let space = trimmed.firstIndex(of: " ") else {
            return trimmed.isEmpty ? nil : AuthChallenge(scheme: trimmed.lowercased(), parameters: [:])
        }
        var params: [String: String] = [:]
        var rest = Substring(trimmed[trimmed.index(after: space)...])
        while !rest.isEmpty {
            rest = rest.drop { $0 == " " || $0 == "," }
            guard let eq = rest.firstIndex(of: "=") else { break }
            let key = rest[..<eq].lowercased()
            rest = rest[rest.index(after: eq)...]
            var value = ""
            if rest.first == "\"" {
                rest = rest.dropFirst()
                while let c = rest.first, c != "\"" {
                    if c == "\\" { rest = rest.dropFirst() }
                    if let d = rest.first { value.append(d); rest = rest.dropFirst() }
                }
                rest = rest.dropFirst()
            } else {
                value = String(rest.prefix { $0 != "," })
                rest = rest.dropFirst(value.count)
            }
            params[key] = value
        }
        return AuthChallenge(scheme: String(trimmed[..<space]).lowercased(), parameters: params)
    }
}

/// The `user:password` of a Basic Authorization header.
func basicAuthorization(_ l: RegistryCredentials.Login) -> String {
    "Authorization: Basic " + Data((l.user + ":" + l.password).utf8).base64EncodedString()
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass).
func queryEncoded(_ s: String) -> String {
    var out = ""
    for b in s.utf8 {
        if isAlnum(b) || b == UInt8(ascii: "-") || b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: "~") {
            out.append(Character(UnicodeScalar(b)))
        } else {
            out += "%" + (b < 16 ? "0" : "") + String(b, radix: 16, uppercase: true)
        }
    }
    return out
}
