import AgentSupport
import FoundationEssentials
import Glibc

/// Talks to one registry (OCI distribution spec / Docker Registry HTTP API v2): manifests
/// by tag or digest, blobs streamed into the store with their digest and size checked
/// while they download.
public struct RegistryClient: Sendable {
    public let registry: String
    let base: String
    let http = HTTPClient()
    /// Manifests and indexes are small; a larger answer is refused, not buffered.
    static let maxManifestBytes = 4 << 20

    /// `plainHTTP`: the operator's choice (loopback, or policy `images.insecureRegistries`).
    public init(reference: ImageReference, plainHTTP: Bool) {
        registry = reference.registry
        base = (plainHTTP ? "http://" : "https://") + reference.apiHost + "/v2/"
    }

    /// `GET /v2/`: the registry is there and speaks the API. A 401 names the challenge
    /// (credentials are not supported yet).
    public func ping() throws(ImageError) {
        let r = try call("GET /v2/") { () throws(HTTPError) in try http.get(base, maxBytes: 64 << 10) }
        if r.status == 401 { throw .unauthorized(registry: registry, challenge: r.headers["www-authenticate"] ?? "no challenge") }
        guard r.status == 200 else { throw .registry(registry: registry, what: "GET /v2/", status: r.status, detail: "") }
    }

    /// A manifest or index, verified against `expected` when given (a digest reference).
    /// Returns its bytes, Content-Type and digest.
    public func manifest(_ repository: String, _ reference: String,
                         expected: Digest?) throws(ImageError) -> (bytes: [UInt8], contentType: String?, digest: Digest) {
        let what = "manifest \(repository):\(reference)"
        let headers = ["Accept: " + MediaType.accept.joined(separator: ", ")]
        let url = base + repository + "/manifests/" + reference
        let r = try call(what) { () throws(HTTPError) in try http.get(url, headers: headers, maxBytes: Self.maxManifestBytes) }
        if r.status == 401 { throw .unauthorized(registry: registry, challenge: r.headers["www-authenticate"] ?? "no challenge") }
        guard r.status == 200 else { throw .registry(registry: registry, what: what, status: r.status, detail: errorCode(r.body)) }
        let d = Digest(of: r.body)
        if let expected, d != expected { throw .digestMismatch(registry: registry, expected: expected, actual: d.description) }
        return (r.body, r.headers["content-type"], d)
    }

    /// Streams blob `d` into the store (nothing when it is already there). The transfer
    /// stops as soon as it is larger than `size`; a wrong digest or size stores nothing.
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
        let r = try call(what) { () throws(HTTPError) in try http.stream(url) { w.write($0) } }
        if r.status == 401 { throw .unauthorized(registry: registry, challenge: r.headers["www-authenticate"] ?? "no challenge") }
        guard r.status == 200 else { throw .registry(registry: registry, what: what, status: r.status, detail: "") }
        if r.aborted && w.written > size {
            throw .sizeMismatch(registry: registry, digest: d, expected: size, actual: w.written)
        }
        try w.commit()
    }

    private func call<T>(_ what: String, _ body: () throws(HTTPError) -> T) throws(ImageError) -> T {
        do { return try body() } catch { throw .transfer(registry: registry, what: what, message: error.message) }
    }

    /// The first error code of a registry error body (`{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`).
    private func errorCode(_ body: [UInt8]) -> String {
        guard case .object(let o)? = try? JSONValue.parse(body), case .array(let errors)? = o["errors"],
              case .object(let first)? = errors.first, let code = first["code"]?.string else { return "" }
        return code
    }
}
