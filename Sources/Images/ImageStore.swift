import AgentSupport
import Dispatch
import FoundationEssentials
import Glibc
import Sandbox

/// When a job's image is fetched from its registry (job key `"pull"`).
public enum PullPolicy: String, Sendable, CaseIterable {
    /// Use the stored image when there is one (the default).
    case ifNotPresent = "if-not-present"
    /// Ask the registry every time (a moved tag is followed).
    case always
    /// Only the store: an image not there fails.
    case never
}

/// An image ready to be a container's root: its snapshots and its config. Keep it for as
/// long as a container uses the snapshots: its lease keeps `agent image prune` off them.
public struct PreparedImage: Sendable {
    public var reference: String
    /// The platform manifest's digest.
    public var digest: Digest
    public var config: ImageConfig
    /// Snapshot folders, top layer first (overlayfs's lowerdir order).
    public var layers: [String]
    public var warnings: [String] = []
    /// The subordinate ranges its snapshots' files carry the layers' owners in, or nil
    /// when every file belongs to the agent (single mode; owners in `user.rootlesscontainers`).
    public var owners: OwnerRanges? = nil
    /// Shared locks on the snapshots (see `ImageStore.prune`).
    public var lease: ImageLease? = nil
    /// The store grew for this image (a pull), so its budget is checked.
    var fetchedNow = false
}

/// The image store's front door: pull, prepare for a container, list, inspect, remove.
public struct ImageStore: Sendable {
    public let content: ContentStore
    public let refs: RefIndex
    /// The snapshots in this store's owner mode (`owners`).
    public var snapshots: SnapshotStore { SnapshotStore(store: content, owners: owners) }
    /// The subordinate ranges the steps that use the snapshots map (`OwnerRanges.forSteps`),
    /// or nil for single mode: which snapshots `prepare`, `pull` and imports unpack and use.
    public var owners: OwnerRanges? = nil
    /// Registries reached over plain HTTP besides loopback (policy `images.insecureRegistries`).
    public var insecureRegistries: [String]
    /// The operator's registry logins (`RegistryCredentials.load`); never a job's.
    public var credentials = RegistryCredentials()
    /// The store's size budget (policy `images.storeMaxBytes`), checked after a pull or an
    /// import grew the store: least recently used images are evicted (see ImageBudget.swift).
    public var storeMaxBytes: Int64? = nil

    public init(stateDirectory: String, insecureRegistries: [String] = []) throws(ImageError) {
        content = try ContentStore(stateDirectory: stateDirectory)
        refs = RefIndex(store: content)
        self.insecureRegistries = insecureRegistries
    }

    func plainHTTP(_ r: ImageReference) -> Bool {
        r.isLoopback || insecureRegistries.contains(r.registry) || insecureRegistries.contains(r.hostName)
    }

    /// The image of `source`, pulled as `policy` says, with its snapshots unpacked.
    public func prepare(_ source: ImageSource, pull policy: PullPolicy = .ifNotPresent) throws(ImageError) -> PreparedImage {
        var image = try prepareGated(source, pull: policy)
        // After the gate: eviction prunes, which takes it exclusively. The image's own
        // lease keeps its snapshots; `keep` keeps its reference.
        if image.fetchedNow { image.warnings += applyBudget(keep: [image.reference]) }
        return image
    }

    private func prepareGated(_ source: ImageSource, pull policy: PullPolicy) throws(ImageError) -> PreparedImage {
        // Held shared while the image is fetched and leased, so a prune cannot take
        // blobs or snapshots between being stored and being leased.
        let gate = try content.lock("pull", shared: true)
        defer { close(gate) }
        var image = try fetch(source, pull: policy)
        image.lease = try lease(Digest.chainIDs(image.config.diffIDs), image: image.digest)
        return image
    }

    /// Enforces `storeMaxBytes` (when set), keeping `keep`; returns what to tell the user
    /// (evicted images, a store still over budget, an eviction that failed).
    public func applyBudget(keep: Set<String>) -> [String] {
        guard let max = storeMaxBytes else { return [] }
        do {
            let r = try enforceBudget(max, keep: keep)
            var notes = r.evicted.map { "image store over its budget (images.storeMaxBytes \(max)): evicted \($0), the least recently used" }
            if r.over { notes.append("image store holds \(r.bytes) bytes, over its budget of \(max) (images.storeMaxBytes): what is left is in use") }
            return notes
        } catch {
            return ["image store budget not enforced: \(error)"]
        }
    }

    private func fetch(_ source: ImageSource, pull policy: PullPolicy) throws(ImageError) -> PreparedImage {
        guard case .registry(let ref) = source else {
            throw .unsupported(reference: source.description, problem: "local image sources (oci:, oci-archive:, docker-archive:) are not supported yet")
        }
        let key = ref.description
        if policy != .always, let rec = refs.get(key), content.has(rec.manifest) {
            return try materialise(key, manifest: rec.manifest)
        }
        if policy == .never { throw .notPresent(reference: key) }
        return try pullLocked(ref)
    }

    /// Pulls `ref`: manifest (an index resolves to linux and this machine's architecture),
    /// config and layers, each verified; then unpacks the snapshots and records the reference.
    public func pull(_ ref: ImageReference) throws(ImageError) -> PreparedImage {
        var image: PreparedImage
        do {
            let gate = try content.lock("pull", shared: true)
            defer { close(gate) }
            image = try pullLocked(ref)
        }
        image.warnings += applyBudget(keep: [image.reference])
        return image
    }

    private func pullLocked(_ ref: ImageReference) throws(ImageError) -> PreparedImage {
        let client = RegistryClient(reference: ref, plainHTTP: plainHTTP(ref), credentials: credentials)
        try client.ping()
        let key = ref.description
        let top = try client.manifest(ref.repository, ref.manifestReference, expected: ref.digest)
        var bytes = top.bytes
        var digest = top.digest
        var doc = try ManifestDocument.parse(bytes, contentType: top.contentType, reference: key, digest: digest)
        var indexBytes: [UInt8]?
        if case .index(let entries) = doc {
            guard let pick = entries.first(where: { $0.os == "linux" && $0.architecture == hostArchitecture }) else {
                throw .badManifest(reference: key, digest: digest.description,
                                   problem: "no manifest for linux/\(hostArchitecture) (has: "
                                       + entries.map { "\($0.os ?? "?")/\($0.architecture ?? "?")" }.joined(separator: ", ") + ")")
            }
            indexBytes = bytes
            let m = try client.manifest(ref.repository, pick.digest.description, expected: pick.digest)
            bytes = m.bytes
            digest = m.digest
            doc = try ManifestDocument.parse(bytes, contentType: m.contentType, reference: key, digest: digest)
            if case .index = doc { throw .badManifest(reference: key, digest: digest.description, problem: "an index inside an index") }
        }
        guard case .manifest(let configDesc, let layers) = doc else { fatalError("resolved above") }
        guard configDesc.size <= 16 << 20 else {
            throw .badManifest(reference: key, digest: digest.description, problem: "config of \(configDesc.size) bytes is larger than 16 MiB")
        }
        try client.fetchBlob(ref.repository, configDesc.digest, size: configDesc.size, into: content)
        let config = try ImageConfig.parse(try content.read(configDesc.digest), reference: key, digest: configDesc.digest)
        try fetchLayers(layers, client: client, repository: ref.repository)
        // The manifest (and index) are stored last: a stored manifest means a complete image.
        try content.put(bytes, registry: ref.registry)
        if let indexBytes { try content.put(indexBytes, registry: ref.registry) }
        var prepared = try materialise(key, manifest: digest, config: config, layers: layers)
        prepared.fetchedNow = true
        let record = ImageRecord(reference: key, manifest: digest, digest: top.digest, pulled: Int64(time(nil)))
        try refs.update { $0[key] = record }
        return prepared
    }

    /// Downloads the layers not yet stored, up to 3 at once (each verified as it streams).
    /// The first failure in layer order is reported; blobs that completed stay stored.
    func fetchLayers(_ layers: [Descriptor], client: RegistryClient, repository: String) throws(ImageError) {
        let todo = layers.filter { !content.has($0.digest) }
        guard todo.count > 1 else {
            for l in todo { try client.fetchBlob(repository, l.digest, size: l.size, into: content) }
            return
        }
        final class Failures: @unchecked Sendable {
            let lock = Lock()
            var byIndex: [Int: ImageError] = [:]
        }
        let failures = Failures()
        let group = DispatchGroup()
        let slots = DispatchSemaphore(value: 3)
        let queue = DispatchQueue(label: "agent.image.pull", attributes: .concurrent)
        let store = content
        for (i, l) in todo.enumerated() {
            slots.wait()
            group.enter()
            queue.async {
                defer { slots.signal(); group.leave() }
                do throws(ImageError) {
                    try client.fetchBlob(repository, l.digest, size: l.size, into: store)
                } catch {
                    failures.lock.withLock { failures.byIndex[i] = error }
                }
            }
        }
        group.wait()
        if let first = failures.byIndex.keys.min() { throw failures.byIndex[first]! }
    }

    /// The stored manifest and config of `reference`, parsed.
    public func load(manifest: Digest, reference: String) throws(ImageError) -> (config: ImageConfig, configDigest: Digest, layers: [Descriptor]) {
        let doc = try ManifestDocument.parse(try content.read(manifest), contentType: nil, reference: reference, digest: manifest)
        guard case .manifest(let c, let layers) = doc else {
            throw .badManifest(reference: reference, digest: manifest.description, problem: "stored manifest is an index")
        }
        return (try ImageConfig.parse(try content.read(c.digest), reference: reference, digest: c.digest), c.digest, layers)
    }

    private func materialise(_ key: String, manifest: Digest, config: ImageConfig? = nil,
                             layers: [Descriptor]? = nil) throws(ImageError) -> PreparedImage {
        var cfg = config, ls = layers
        if cfg == nil || ls == nil {
            let l = try load(manifest: manifest, reference: key)
            cfg = l.config; ls = l.layers
        }
        let s = try snapshots.ensure(image: key, layers: ls!, diffIDs: cfg!.diffIDs)
        return PreparedImage(reference: key, digest: manifest, config: cfg!, layers: s.paths, warnings: s.warnings, owners: owners)
    }

    /// Drops `reference` from the index. Blobs and snapshots stay until a prune (not done yet).
    public func remove(_ reference: String) throws(ImageError) -> Bool {
        var found = false
        try refs.update { found = $0.removeValue(forKey: reference) != nil }
        return found
    }
}
