import AgentSupport
import FoundationEssentials
import Glibc

/// Talks to one registry (OCI distribution spec / Docker Registry HTTP API v2): manifests
/// by tag or digest, blobs streamed into the store with their digest and size checked
/// while they download. A 401 is answered once per request from its `WWW-Authenticate`
/// challenge: Basic with the operator's login, or Bearer with a token fetched from the
/// challenge's realm (with the login if there is one, anonymously otherwise).
public final class RegistryClient: @unchecked Sendable {
    public let registry: String
    let base: String
    let plainHTTP: Bool
    let repository: String
    let login: RegistryCredentials.Login?
    /// Why no login could be had (a credential helper failed): reported at the first challenge.
    let loginProblem: ImageError?
    let http = HTTPClient()
    /// The Authorization header that worked last, shared by the pull's download threads.
    private var authorizationValue: String?
    private let lock = Lock()
    private var authorization: String? {
        get { lock.withLock { authorizationValue } }
        set { lock.withLock { authorizationValue = newValue } }
    }
    /// Pushing: a Bearer challenge without a scope is answered for `pull,push`.
    var pushing = false
    /// Manifests and indexes are small; a larger answer is refused, not buffered.
    static let maxManifestBytes = 4 << 20

    /// `plainHTTP`: the operator's choice (loopback, or policy `images.insecureRegistries`).
    public init(reference: ImageReference, plainHTTP: Bool, credentials: RegistryCredentials = RegistryCredentials()) {
        registry = reference.registry
        repository = reference.repository
        self.plainHTTP = plainHTTP
        base = (plainHTTP ? "http://" : "https://") + reference.apiHost + "/v2/"
        do throws(ImageError) {
            login = try credentials.resolveLogin(for: reference.registry)
            loginProblem = nil
        } catch {
            login = nil
            loginProblem = error
        }
    }

    /// `GET /v2/`: the registry is there and speaks the API (a 401 here is normal: the
    /// challenge is answered on the first real request).
    public func ping() throws(ImageError) {
        let r = try call("GET /v2/") { () throws(HTTPError) in try http.get(base, maxBytes: 64 << 10) }
        guard r.status == 200 || r.status == 401 else { throw .registry(registry: registry, what: "GET /v2/", status: r.status, detail: "") }
    }

    /// A manifest or index, verified against `expected` when given (a digest reference).
    /// Returns its bytes, Content-Type and digest.
    public func manifest(_ repository: String, _ reference: String,
                         expected: Digest?) throws(ImageError) -> (bytes: [UInt8], contentType: String?, digest: Digest) {
        let what = "manifest \(repository):\(reference)"
        let url = base + repository + "/manifests/" + reference
        let r = try authorized(what) { (auth) throws(HTTPError) in
            let r = try http.get(url, headers: ["Accept: " + MediaType.accept.joined(separator: ", ")] + auth,
                                 maxBytes: Self.maxManifestBytes)
            return (r.status, r.headers, r)
        }.value
        guard r.status == 200 else { throw .registry(registry: registry, what: what, status: r.status, detail: errorCode(r.body)) }
        let d = Digest(of: r.body)
        if let expected, d != expected { throw .digestMismatch(registry: registry, expected: expected, actual: d.description) }
        return (r.body, r.headers["content-type"], d)
    }

    /// Streams blob `d` into the store (nothing when it is already there). The transfer
    /// stops as soon as it is larger than `size`; a wrong digest or size stores nothing.
    /// A transfer cut off mid-way is resumed with a `Range` request from the bytes already
    /// written (hashed as they came, so nothing is read twice); a server that answers the
    /// Range with the whole body (200) starts the blob again.
    /// Concurrent pulls (other agents on the same state folder) download each blob once:
    /// the second waits on the blob's lock and then finds it stored.
    public func fetchBlob(_ repository: String, _ d: Digest, size: Int64, into store: ContentStore) throws(ImageError) {
        if store.has(d) { return }
        let lock = try store.lock("blob-" + d.hex)
        defer { close(lock) }
        if store.has(d) { return }
        let what = "blob \(d)"
        let w = try BlobWriter(store: store, expected: d, size: size, registry: registry)
        let url = base + repository + "/blobs/" + d.description
        // Only a 2xx body reaches the writer, so a 401 or 5xx answered and retried leaves
        // what it holds a true prefix of the blob: each attempt goes on from there.
        let r = try authorized(what) { (auth) throws(HTTPError) in
            let from = w.written
            if from == size { return (200, [:], (status: 200, headers: [String: String](), aborted: false)) }
            let r = try http.stream(url, headers: auth, resumeFrom: from, response: { status, headers in
                Self.acceptsResumed(status: status, headers: headers, from: from, writer: w)
            }) { w.write($0) }
            return (r.status == 206 ? 200 : r.status, r.headers, r)
        }.value
        guard r.status == 200 || r.status == 206 else { throw .registry(registry: registry, what: what, status: r.status, detail: "") }
        if r.aborted && w.written > size {
            throw .sizeMismatch(registry: registry, digest: d, expected: size, actual: w.written)
        }
        try w.commit()
    }

    /// Whether the body of a response to a blob request that asked for bytes `from`-… may
    /// be appended to what `writer` holds: a 206 must start exactly there; a 200 is the
    /// whole blob, so the writer starts again. Anything else aborts the transfer.
    static func acceptsResumed(status: Int, headers: [String: String], from: Int64, writer w: BlobWriter) -> Bool {
        if status == 206 {
            // "bytes START-END/TOTAL"
            let range = headers["content-range"] ?? ""
            guard range.hasPrefix("bytes "), let dash = range.firstIndex(of: "-"),
                  Int64(range[range.index(range.startIndex, offsetBy: 6)..<dash]) == from else { return false }
            return true
        }
        if from > 0 { return (try? w.reset()) != nil }
        return true
    }

    /// Runs `request` with the current Authorization; on a 401 answers the challenge once
    /// and runs it again.
    func authorized<T>(_ what: String, retry reset: () throws(ImageError) -> Void = {},
                               _ request: ([String]) throws(HTTPError) -> (Int, [String: String], T)) throws(ImageError) -> (status: Int, headers: [String: String], value: T) {
        var r = try retrying(what, reset) { () throws(HTTPError) in try request(authorization.map { [$0] } ?? []) }
        if r.0 == 401 {
            let header = r.1["www-authenticate"] ?? ""
            authorization = try answer(header)
            try reset()
            r = try retrying(what, reset) { () throws(HTTPError) in try request(authorization.map { [$0] } ?? []) }
            if r.0 == 401 { throw .unauthorized(registry: registry, challenge: header.isEmpty ? "no challenge" : header) }
        }
        return (r.0, r.1, r.2)
    }

    /// Attempts of one request: a 429 or 5xx answer, or a transfer that broke off, is tried
    /// again after Retry-After (at most 10 s) or 0.5, 1, 2 s; `reset` drops what a failed
    /// attempt wrote (a partial blob).
    static let attempts = 4
    private func retrying<T>(_ what: String, _ reset: () throws(ImageError) -> Void,
                             _ body: () throws(HTTPError) -> (Int, [String: String], T)) throws(ImageError) -> (Int, [String: String], T) {
        var delay = 0.5
        for attempt in 1...Self.attempts {
            let last = attempt == Self.attempts
            var wait = delay
            do {
                let r = try body()
                let retryable = r.0 == 429 || (500...599).contains(r.0)
                if !retryable || last { return r }
                if let ra = r.1["retry-after"].flatMap({ Double($0) }), ra >= 0 { wait = min(ra, 10) }
            } catch {
                if last { throw .transfer(registry: registry, what: what, message: error.message) }
            }
            try reset()
            var req = timespec(tv_sec: Int(wait), tv_nsec: Int((wait - wait.rounded(.down)) * 1e9)), rem = timespec()
            while nanosleep(&req, &rem) != 0 && errno == EINTR { req = rem }
            delay *= 2
        }
        fatalError("unreachable: the last attempt returns or throws")
    }

    /// The Authorization header for a challenge.
    func answer(_ header: String) throws(ImageError) -> String {
        if let loginProblem { throw loginProblem }
        guard let c = AuthChallenge.parse(header) else { throw .unauthorized(registry: registry, challenge: "no challenge") }
        switch c.scheme {
        case "basic":
            guard let login else {
                throw .unauthorized(registry: registry, challenge: header + "; no login for it in the operator's credentials")
            }
            return basicAuthorization(login)
        case "bearer":
            guard let realm = c.parameters["realm"], realm.hasPrefix("https://") || (plainHTTP && realm.hasPrefix("http://")) else {
                throw .unauthorized(registry: registry, challenge: header + "; the token realm must be https")
            }
            var query: [String] = []
            if let s = c.parameters["service"] { query.append("service=" + queryEncoded(s)) }
            // A challenge may name several scopes (a cross-repository mount: the target's
            // push and the source's pull), space-separated: one `scope=` each, as the
            // token spec asks.
            let scopes = (c.parameters["scope"] ?? "repository:\(repository):" + (pushing ? "pull,push" : "pull")).split(separator: " ")
            for scope in scopes { query.append("scope=" + queryEncoded(String(scope))) }
            let url = realm + (realm.contains("?") ? "&" : "?") + query.joined(separator: "&")
            let r = try call("token from \(realm)") { () throws(HTTPError) in
                try http.get(url, headers: login.map { [basicAuthorization($0)] } ?? [], maxBytes: 1 << 20)
            }
            guard r.status == 200 else { throw .registry(registry: registry, what: "token from \(realm)", status: r.status, detail: "") }
            guard case .object(let o)? = try? JSONValue.parse(r.body),
                  let token = o["token"]?.string ?? o["access_token"]?.string, !token.isEmpty else {
                throw .unauthorized(registry: registry, challenge: header + "; the token answer has no token")
            }
            return "Authorization: Bearer " + token
        default:
            throw .unauthorized(registry: registry, challenge: header)
        }
    }

    func call<T>(_ what: String, _ body: () throws(HTTPError) -> T) throws(ImageError) -> T {
        do { return try body() } catch { throw .transfer(registry: registry, what: what, message: error.message) }
    }

    /// The first error code of a registry error body (`{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`).
    func errorCode(_ body: [UInt8]) -> String {
        guard case .object(let o)? = try? JSONValue.parse(body), case .array(let errors)? = o["errors"],
              case .object(let first)? = errors.first, let code = first["code"]?.string else { return "" }
        return code
    }
}
