import Foundation
import Synchronization
import Testing
@testable import Images

@Suite("Image config and commit")
struct ImageCommitTests {
    @Test func configRoundTripsKeepingUnknownKeysWithACanonicalDigest() throws {
        let text = """
        {"architecture": "amd64", "os": "linux", "created": "2026-01-02T03:04:05Z", "author": "me",
         "moby.buildkit.buildinfo.v1": "e30=",
         "config": {"User": "1000:1000", "Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "Entrypoint": null,
                    "ExposedPorts": {"80/tcp": {}, "53/udp": {}}, "Volumes": {"/data": {}}, "WorkingDir": "/w",
                    "Labels": {"k": "v"}, "StopSignal": "SIGTERM", "Shell": ["/bin/sh", "-c"], "OnBuild": ["RUN x"],
                    "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 30000000000, "Retries": 3},
                    "ArgsEscaped": true, "Domainname": "x"},
         "rootfs": {"type": "layers", "diff_ids": ["sha256:\(String(repeating: "a", count: 64))"]},
         "history": [{"created": "2026-01-02T03:04:05Z", "created_by": "ADD x", "empty_layer": false},
                     {"created_by": "ENV A=1", "empty_layer": true, "comment": "buildkit"}]}
        """
        let d = Digest(of: Array(text.utf8))
        let c = try ImageConfigDocument.parse(Array(text.utf8), reference: "t", digest: d)
        #expect(c.user == "1000:1000" && c.env == ["PATH=/bin", "A=1"] && c.cmd == ["sh"] && c.entrypoint == nil)
        #expect(c.exposedPorts == ["53/udp", "80/tcp"] && c.volumes == ["/data"] && c.labels == ["k": "v"])
        #expect(c.healthcheck == Healthcheck(test: ["CMD-SHELL", "true"], interval: 30_000_000_000, retries: 3))
        #expect(c.history.count == 2 && c.history[1].emptyLayer && c.history[1].comment == "buildkit")
        #expect(c.environment("A") == "1")
        let bytes = c.serialized()
        let s = String(decoding: bytes, as: UTF8.self)
        // Sorted keys, no whitespace, unknown keys kept (top level and inside config).
        #expect(s.hasPrefix(#"{"architecture":"amd64","author":"me","config":{"ArgsEscaped":true,"Cmd":["sh"],"Domainname":"x","Env":"#))
        #expect(s.contains(#""moby.buildkit.buildinfo.v1":"e30=""#) && !s.contains("\": ") && !s.contains(", \""))
        let again = try ImageConfigDocument.parse(bytes, reference: "t", digest: Digest(of: bytes))
        #expect(again == c && again.serialized() == bytes)
        // Same content built another way: the same digest.
        var b = ImageConfigDocument(architecture: "amd64")
        b.setEnvironment("X", "1"); b.setEnvironment("X", "2")
        var a = ImageConfigDocument(architecture: "amd64")
        a.setEnvironment("X", "2")
        #expect(a.digest == b.digest && a.env == ["X=2"])
        #expect(ImageConfigDocument.timestamp(epochSeconds: 1_700_000_000) == "2023-11-14T22:13:20Z")
    }

    @Test func aCommittedImageIsPreparedFromTheStoreWithoutARegistryAndExportsItsRootFilesystem() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try ImageStore(stateDirectory: dir)
        let fm = FileManager.default
        // Layer 1: a base with a file and a folder; layer 2 deletes the file, replaces the folder.
        try fm.createDirectory(atPath: dir + "/l1/etc/conf.d", withIntermediateDirectories: true)
        try "base\n".write(toFile: dir + "/l1/etc/gone", atomically: false, encoding: .utf8)
        try "old\n".write(toFile: dir + "/l1/etc/conf.d/old", atomically: false, encoding: .utf8)
        try "keep\n".write(toFile: dir + "/l1/etc/keep", atomically: false, encoding: .utf8)
        let upper = try makeUpperDir(dir + "/ov")
        var o = LayerWriteOptions()
        o.sourceDateEpoch = 0
        let l1fd = openDir(dir + "/l1"); defer { close(l1fd) }
        let l1 = try LayerWriter(store: store.content, options: o).write(.directory(l1fd))
        var cfg = ImageConfigDocument()
        cfg.cmd = ["sh"]
        cfg.history = [HistoryEntry(created: ImageConfigDocument.timestamp(epochSeconds: 0), createdBy: "COPY l1 /")]
        let base = try store.commit(base: nil, layers: [l1], config: cfg, tags: ["localhost/base:1"])
        o.convertOverlayWhiteouts = true
        let l2fd = openDir(upper); defer { close(l2fd) }
        let l2 = try LayerWriter(store: store.content, options: o).write(.directory(l2fd))
        let emptyDir = dir + "/empty"
        try fm.createDirectory(atPath: emptyDir, withIntermediateDirectories: true)
        let efd = openDir(emptyDir); defer { close(efd) }
        let empty = try LayerWriter(store: store.content, options: o).write(.directory(efd))
        #expect(empty.isEmpty)
        var (top, _) = try store.baseImage(manifest: base.manifest, reference: "base")
        top.history.append(HistoryEntry(createdBy: "RUN change"))
        top.history.append(HistoryEntry(createdBy: "ENV A=1", emptyLayer: true))
        top.setEnvironment("A", "1")
        let img = try store.commit(base: base.manifest, layers: [l2, empty], config: top, tags: ["localhost/app:1", "app:latest"])
        #expect(img.layers.map(\.digest) == [l1.descriptor.digest, l2.descriptor.digest])
        // The same inputs give the same manifest digest.
        #expect(try store.commit(base: base.manifest, layers: [l2, empty], config: top).manifest == img.manifest)
        #expect(store.refs.get("localhost/app:1")?.manifest == img.manifest)
        #expect(store.refs.get("docker.io/library/app:latest")?.manifest == img.manifest)
        let m = String(decoding: try store.content.read(img.manifest), as: UTF8.self)
        #expect(m.contains(#""mediaType":"application/vnd.oci.image.manifest.v1+json""#))
        let prepared = try store.prepare(.registry(try ImageReference.parse("localhost/app:1")), pull: .never)
        #expect(prepared.digest == img.manifest && prepared.layers.count == 2 && prepared.config.env == ["A=1"])
        #expect(prepared.config.diffIDs == [l1.diffID, l2.diffID])
        // type=local: the layers unpacked with whiteouts applied.
        let rootDir = dir + "/rootfs"
        try fm.createDirectory(atPath: rootDir, withIntermediateDirectories: true)
        let rfd = open(rootDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC); defer { close(rfd) }
        _ = try store.exportRootFilesystem(manifest: base.manifest, into: rfd)
        #expect(fm.fileExists(atPath: rootDir + "/etc/gone") && fm.fileExists(atPath: rootDir + "/etc/conf.d/old"))
        let rootDir2 = dir + "/rootfs2"
        try fm.createDirectory(atPath: rootDir2, withIntermediateDirectories: true)
        // The overlay layer of makeUpperDir names `gone`, `dir` (opaque) and `keep/added`.
        try fm.createDirectory(atPath: dir + "/l3/dir", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: dir + "/l3/keep", withIntermediateDirectories: true)
        try "a".write(toFile: dir + "/l3/gone", atomically: false, encoding: .utf8)
        try "b".write(toFile: dir + "/l3/dir/old", atomically: false, encoding: .utf8)
        let l3fd = openDir(dir + "/l3"); defer { close(l3fd) }
        o.convertOverlayWhiteouts = false
        let l3 = try LayerWriter(store: store.content, options: o).write(.directory(l3fd))
        let two = try store.commit(base: nil, layers: [l3, l2], config: ImageConfigDocument())
        let r2 = open(rootDir2, O_RDONLY | O_DIRECTORY | O_CLOEXEC); defer { close(r2) }
        _ = try store.exportRootFilesystem(manifest: two.manifest, into: r2)
        let listing = try run(["/usr/bin/find", rootDir2, "-mindepth", "1"]).out.split(separator: "\n").map { $0.dropFirst(rootDir2.count + 1) }.sorted()
        #expect(listing == ["dir", "dir/new", "keep", "keep/added"], "\(listing)")
    }
}

@Suite("Snapshot unpack and leases")
struct SnapshotLeaseTests {
    /// A lease (shared, on the snapshot's lock) taken on a ChainID whose snapshot another
    /// thread is about to unpack, as two parallel build stages on one base do: the unpack
    /// finishes instead of waiting for the lease forever.
    @Test func anUnpackDoesNotWaitForALeaseOnItsSnapshot() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try ImageStore(stateDirectory: dir)
        try FileManager.default.createDirectory(atPath: dir + "/l1/etc", withIntermediateDirectories: true)
        try "x\n".write(toFile: dir + "/l1/etc/x", atomically: false, encoding: .utf8)
        var o = LayerWriteOptions()
        o.sourceDateEpoch = 0
        let fd = openDir(dir + "/l1"); defer { close(fd) }
        let layer = try LayerWriter(store: store.content, options: o).write(.directory(fd))
        let chain = Digest.chainIDs([layer.diffID])
        #expect(!store.snapshots.has(chain[0]))
        let lease = try store.lease(chain)
        let done = DispatchSemaphore(value: 0)
        let failure = Mutex<String?>(nil)
        Thread.detachNewThread {
            do { _ = try store.snapshots.ensure(image: "t", layers: [layer.descriptor], diffIDs: [layer.diffID]) }
            catch { failure.withLock { $0 = "\(error)" } }
            done.signal()
        }
        #expect(done.wait(timeout: .now() + 120) == .success, "the unpack waited for the lease")
        #expect(failure.withLock { $0 } == nil)
        #expect(store.snapshots.has(chain[0]))
        withExtendedLifetime(lease) {}
    }
}
