import AgentSupport
import FoundationEssentials
import Glibc

/// `agent login` / `agent logout`: the operator's credentials file (the one
/// `RegistryCredentials.load` reads) changed for one registry. Everything else in the file
/// (other registries, `credsStore`, Docker's other keys) is kept as it was. The file is
/// replaced whole, crash-safely: a temporary file beside it (mode 0600: it holds
/// passwords), written and fsynced, renamed over the old one, the folder fsynced. A crash
/// leaves the old file or the new one, never half of either.
public enum RegistryLogin {
    /// Stores `login` for `registry`; returns the file written.
    @discardableResult
    public static func store(_ login: RegistryCredentials.Login, registry: String, environment: [String: String]) throws(ImageError) -> String {
        try change(environment: environment) { auths in
            removeEntries(for: registry, from: &auths)
            let auth = Data((login.user + ":" + login.password).utf8).base64EncodedString()
            auths[key(for: registry)] = .object(["auth": .string(auth)])
        }
    }

    /// Removes every entry for `registry` (`host`, `https://host/`, ...); false when there was none.
    public static func remove(registry: String, environment: [String: String]) throws(ImageError) -> Bool {
        var found = false
        try change(environment: environment) { auths in found = removeEntries(for: registry, from: &auths) }
        return found
    }

    /// The key Docker writes: `https://index.docker.io/v1/` for Docker Hub, else `host[:port]`.
    static func key(for registry: String) -> String {
        let r = RegistryCredentials.normalise(registry)
        return r == ImageReference.dockerHub ? "https://index.docker.io/v1/" : r
    }

    @discardableResult
    static func removeEntries(for registry: String, from auths: inout [String: JSONValue]) -> Bool {
        let r = RegistryCredentials.normalise(registry)
        let keys = auths.keys.filter { RegistryCredentials.normalise($0) == r }
        for k in keys { auths[k] = nil }
        return !keys.isEmpty
    }

    static func change(environment: [String: String], _ body: (inout [String: JSONValue]) -> Void) throws(ImageError) -> String {
        guard let (path, explicit) = RegistryCredentials.filePath(environment: environment) else {
            throw .unsupported(reference: "login", problem: "neither REGISTRY_AUTH_FILE nor HOME is set: no credentials file to write")
        }
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        // ~/.docker is made on first login, private (as docker does); a folder the operator
        // named in REGISTRY_AUTH_FILE must already exist.
        if !explicit, mkdir(dir, 0o700) != 0, errno != EEXIST { throw .store(path: dir, operation: "create", errno: errno) }
        var root: [String: JSONValue] = [:]
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            let bytes = readUpTo(fd, limit: 1 << 20)
            close(fd)
            guard let bytes else { throw .store(path: path, operation: "read", errno: errno) }
            // A file that is not JSON is refused, not overwritten: it may hold logins we cannot see.
            guard case .object(let o)? = try? JSONValue.parse(bytes) else {
                throw .unsupported(reference: path, problem: "registry credentials: not a JSON object; not changed")
            }
            root = o
        } else if errno != ENOENT {
            throw .store(path: path, operation: "open registry credentials", errno: errno)
        }
        var auths: [String: JSONValue] = [:]
        if case .object(let a)? = root["auths"] { auths = a }
        body(&auths)
        root["auths"] = .object(auths)
        try replace(path, in: dir, with: Array((JSONValue.object(root).serialized() + "\n").utf8))
        return path
    }

    /// Temp file (mkstemp: 0600; same folder: the rename is atomic), write, fsync, rename, fsync folder.
    static func replace(_ path: String, in dir: String, with bytes: [UInt8]) throws(ImageError) {
        var template = Array((dir + "/.agent-auth.tmp-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        let tmp = String(cString: template)
        guard fd >= 0 else { throw .store(path: tmp, operation: "create", errno: errno) }
        let ok = fchmod(fd, 0o600) == 0 && writeAll(fd, bytes) && fsync(fd) == 0
        let e = errno
        close(fd)
        guard ok else { unlink(tmp); throw .store(path: tmp, operation: "write", errno: e) }
        guard rename(tmp, path) == 0 else { let e = errno; unlink(tmp); throw .store(path: path, operation: "rename", errno: e) }
        syncDirectory(dir)
    }
}
