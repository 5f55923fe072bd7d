import AgentSupport
import FoundationEssentials
import Glibc

/// How a push uploads blobs.
public struct PushOptions: Sendable {
    /// Blobs up to this size go in one `PUT`; larger ones in `PATCH` chunks.
    public var monolithicLimit: Int64 = 32 << 20
    /// The size of one `PATCH` chunk.
    public var chunkSize: Int64 = 16 << 20
    /// Repositories of the destination registry to try a cross-repository mount from,
    /// for every blob (besides those the store's references on that registry name).
    public var mountFrom: [String] = []

    public init() {}
}

/// What a push did, blob by blob (tests and progress count them).
public struct PushReport: Sendable, Equatable {
    /// The manifest's digest, as the registry confirmed it (`Docker-Content-Digest`).
    public var digest: Digest
    /// Blobs the registry already had (`HEAD` 200).
    public var present: [Digest] = []
    /// Blobs mounted from another repository (`POST ?mount=` 201).
    public var mounted: [Digest] = []
    /// Blobs uploaded in one request.
    public var uploadedMonolithic: [Digest] = []
    /// Blobs uploaded in chunks.
    public var uploadedChunked: [Digest] = []
    /// Bytes sent in blob uploads.
    public var bytesUploaded: Int64 = 0
}

extension ImageStore {
    /// Pushes stored manifest `manifest` (with its config and layers) to `destination`
    /// (its tag, or its digest when it names one). Credentials are the operator's
    /// (`credentials`); plain HTTP only for loopback and `insecureRegistries`. Admission of
    /// the destination registry (policy `images.allowedRegistries`) is the caller's.
    public func push(manifest: Digest, to destination: ImageReference, options: PushOptions = PushOptions()) throws(ImageError) -> PushReport {
        // Shared like a pull: a prune cannot take the blobs while they are sent.
        let gate = try content.lock("pull", shared: true)
        defer { close(gate) }
        let image = try baseImage(manifest: manifest, reference: destination.description)
        let config = try configDescriptor(manifest)
        let bytes = try content.read(manifest)
        let client = RegistryClient(reference: destination, plainHTTP: plainHTTP(destination), credentials: credentials)
        client.pushing = true
        try client.ping()
        let sources = mountSources(registry: destination.registry, except: destination.repository)
        var report = PushReport(digest: manifest)
        for blob in [config] + image.layers {
            let candidates = options.mountFrom.filter { $0 != destination.repository } + (sources[blob.digest] ?? [])
            try client.pushBlob(blob, from: content, mountFrom: candidates, options: options, report: &report)
        }
        let mediaType: String = if case .object(let o)? = try? JSONValue.parse(bytes), let t = o["mediaType"]?.string { t } else { MediaType.ociManifest }
        report.digest = try client.putManifest(bytes, mediaType: mediaType, reference: destination.manifestReference, expected: manifest)
        return report
    }

    /// Blob → repositories of `registry` (other than `except`) whose stored images hold it:
    /// where a cross-repository mount can take it from.
    func mountSources(registry: String, except: String) -> [Digest: [String]] {
        var out: [Digest: [String]] = [:]
        for rec in refs.all().values.sorted(by: { $0.reference < $1.reference }) {
            guard let r = try? ImageReference.parse(rec.reference), r.registry == registry, r.repository != except,
                  let m = try? content.read(rec.manifest),
                  case .manifest(let c, let layers)? = try? ManifestDocument.parse(m, contentType: nil, reference: rec.reference, digest: rec.manifest) else { continue }
            for d in [c] + layers where !(out[d.digest] ?? []).contains(r.repository) { out[d.digest, default: []].append(r.repository) }
        }
        return out
    }
}

extension RegistryClient {
    /// One blob: `HEAD` first (present: nothing to send), then a cross-repository mount
    /// from each candidate (201: done; 202: the registry opened an upload instead), then an
    /// upload, monolithic up to `monolithicLimit`, else in `PATCH` chunks.
    func pushBlob(_ blob: Descriptor, from store: ContentStore, mountFrom: [String], options: PushOptions, report: inout PushReport) throws(ImageError) {
        let what = "blob \(blob.digest)"
        let head = try send(what, "HEAD", base + repository + "/blobs/" + blob.digest.description)
        if head.status == 200 { report.present.append(blob.digest); return }
        guard head.status == 404 else { throw pushError(what, head) }
        var location: String?
        for from in mountFrom {
            let r = try send(what, "POST", base + repository + "/blobs/uploads/?mount=" + queryEncoded(blob.digest.description) + "&from=" + queryEncoded(from))
            if r.status == 201 { report.mounted.append(blob.digest); return }
            if r.status == 202, let l = r.headers["location"] { location = l; break }
        }
        if location == nil {
            let r = try send(what, "POST", base + repository + "/blobs/uploads/")
            guard r.status == 202, let l = r.headers["location"] else { throw pushError(what, r) }
            location = l
        }
        let path = store.blobPath(blob.digest)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .store(path: path, operation: "open", errno: errno) }
        defer { close(fd) }
        var url = absolute(location!)
        if blob.size > options.monolithicLimit {
            var offset: Int64 = 0
            while offset < blob.size {
                let n = min(options.chunkSize, blob.size - offset)
                let r = try send(what, "PATCH", url, headers: ["Content-Type: application/octet-stream", "Content-Range: \(offset)-\(offset + n - 1)"],
                                 body: .file(fd: fd, offset: offset, length: n))
                guard r.status == 202, let l = r.headers["location"] else { throw pushError(what, r) }
                url = absolute(l)
                offset += n
            }
            let r = try send(what, "PUT", url + (url.contains("?") ? "&" : "?") + "digest=" + queryEncoded(blob.digest.description), body: .bytes([]))
            guard r.status == 201 else { throw pushError(what, r) }
            report.uploadedChunked.append(blob.digest)
        } else {
            let r = try send(what, "PUT", url + (url.contains("?") ? "&" : "?") + "digest=" + queryEncoded(blob.digest.description),
                             headers: ["Content-Type: application/octet-stream"], body: .file(fd: fd, offset: 0, length: blob.size))
            guard r.status == 201 else { throw pushError(what, r) }
            report.uploadedMonolithic.append(blob.digest)
        }
        report.bytesUploaded += blob.size
    }

    /// `PUT /v2/<name>/manifests/<reference>`; the registry's `Docker-Content-Digest` must
    /// be the manifest's own digest.
    func putManifest(_ bytes: [UInt8], mediaType: String, reference: String, expected: Digest) throws(ImageError) -> Digest {
        let what = "manifest \(repository):\(reference)"
        let r = try send(what, "PUT", base + repository + "/manifests/" + reference, headers: ["Content-Type: " + mediaType], body: .bytes(bytes))
        guard r.status == 201 || r.status == 200 else { throw pushError(what, r) }
        if let d = r.headers["docker-content-digest"] {
            guard Digest(d) == expected else {
                throw .push(registry: registry, what: what, problem: "the registry stored it as \(d), not \(expected)")
            }
        }
        return expected
    }

    /// A request with the push's authorization (a 401 is answered once, as for pulls).
    private func send(_ what: String, _ method: String, _ url: String, headers: [String] = [], body: HTTPBody? = nil) throws(ImageError) -> HTTPResponse {
        try authorized(what) { (auth) throws(HTTPError) in
            let r = try http.request(method, url, headers: headers + auth, body: body)
            return (r.status, r.headers, r)
        }.value
    }

    /// A Location header made absolute (registries answer with a path or a full URL).
    private func absolute(_ location: String) -> String {
        if location.hasPrefix("http://") || location.hasPrefix("https://") { return location }
        let origin = base.dropLast("/v2/".count)
        return String(origin) + (location.hasPrefix("/") ? "" : "/") + location
    }

    private func pushError(_ what: String, _ r: HTTPResponse) -> ImageError {
        .registry(registry: registry, what: "push " + what, status: r.status, detail: errorCode(r.body))
    }
}
