import AgentSupport
import FoundationEssentials
import Glibc
import Images

/// One build-cache entry: what a RUN, COPY or ADD produced for a cache key.
struct BuildCacheEntry: Codable, Sendable, Equatable {
    /// The layer blob in the image store (nil: the instruction changed no file).
    var layerDigest: String?
    var layerSize: Int64?
    var layerMediaType: String?
    var diffID: String?
    var createdBy: String
    var uncompressedSize: Int64?
    var entries: Int?
}

/// The build cache, BuildKit's model: `key -> entry`, where the key chains the parent's key
/// with everything the instruction sees (`BuildCacheKey`). Entries are small JSON files,
/// `builds/<scope>/<key>.json`, written crash-safely (temporary file, fsync, rename, fsync
/// of the folder); their layers are ordinary blobs of the image store. Scoped like caches
/// (`--cache-scope`: a fork's build never hits a trusted build's entries) and kept within
/// a budget of layer bytes (policy `build.cacheKeepBytes`), least recently used first.
struct BuildCacheStore: Sendable {
    let root: String
    let content: ContentStore

    init(state: StateDirectory, scope: String, content: ContentStore) throws(BuildError) {
        guard CacheKey.isValidScope(scope) else {
            throw BuildError(.badInput, stage: "cache", "invalid cache scope \"\(scope)\" (expected [A-Za-z0-9._-]{1,128})")
        }
        root = state.root + "/builds/" + CacheKey.escape(scope)
        self.content = content
        do {
            try StateDirectory.makeDirectory(state.root + "/builds", mode: 0o700)
            try StateDirectory.makeDirectory(root, mode: 0o700)
        } catch {
            throw BuildError(.agent, stage: "cache", "cannot create the build cache \(root): \(error)")
        }
    }

    private func path(_ key: Digest) -> String { root + "/" + key.hex + ".json" }

    /// The entry for `key`, if stored and its layer blob is still in the image store (an
    /// `agent image prune` may have taken it: then it is a miss). A hit is marked used.
    func lookup(_ key: Digest) -> BuildCacheEntry? {
        guard let e = AtomicJSON.read(BuildCacheEntry.self, from: path(key)) else { return nil }
        if let d = e.layerDigest {
            guard let digest = Digest(d), content.has(digest) else { return nil }
        }
        utimensat(AT_FDCWD, path(key), nil, 0)
        return e
    }

    func store(_ key: Digest, _ entry: BuildCacheEntry) throws(BuildError) {
        do {
            try AtomicJSON.write(entry, to: path(key))
            let dir = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if dir >= 0 { fsync(dir); close(dir) }
        } catch {
            throw BuildError(.agent, stage: "cache", "cannot store a build cache entry: \(error)")
        }
    }

    /// Drops the least recently used entries until the layers they name fit `keepBytes`.
    /// Returns how many were dropped. The blobs go with the next `agent image prune`.
    @discardableResult
    func collect(keepBytes: Int64) -> Int {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: root) else { return 0 }
        var items: [(path: String, used: Int, size: Int64)] = []
        for n in names where n.hasSuffix(".json") {
            let p = root + "/" + n
            var st = stat()
            guard lstat(p, &st) == 0, let e = AtomicJSON.read(BuildCacheEntry.self, from: p) else { continue }
            items.append((p, st.st_mtim.tv_sec, e.layerSize ?? 0))
        }
        var total = items.reduce(Int64(0)) { $0 + $1.size }
        var dropped = 0
        for item in items.sorted(by: { $0.used < $1.used }) where total > keepBytes {
            unlink(item.path)
            total -= item.size
            dropped += 1
        }
        return dropped
    }
}
