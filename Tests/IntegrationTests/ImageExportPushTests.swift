import Foundation
import Testing

/// `agent image export` to OCI and docker archives, read by skopeo and umoci, and
/// `agent image push` to the loopback registries of ci/test.sh, counted in their access
/// logs: blobs already there are not sent, blobs of another repository are mounted,
/// large blobs go in chunks, and the token registry takes only the operator's login.
@Suite(.serialized) struct ImageExportPushTests {
    static var testRoot: String {
        URL(fileURLWithPath: Harness.agentBinary).deletingLastPathComponent().deletingLastPathComponent().path
    }
    /// The access log of the registry ci/test.sh started (`plain` or `auth`).
    static func registryLog(_ name: String) throws -> [String] {
        try String(contentsOfFile: testRoot + "/registry/\(name)/log", encoding: .utf8).split(separator: "\n").map(String.init)
    }
    static func requests(_ name: String, _ repo: String) throws -> [String] {
        try registryLog(name).filter { $0.contains("\"") && $0.contains(" /v2/\(repo)/") && !$0.contains("level=") }
    }

    func shell(_ script: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-ec", script]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(script)")
        return String(decoding: data, as: UTF8.self)
    }

    func pulled(_ label: String, _ image: String = "layered") async throws -> (dir: String, state: String) {
        let dir = try Harness.scratch(label)
        let r = try await Harness.run(["image", "pull", "--state-dir", dir + "/state", ImageTests.ref(image)])
        #expect(r.status == 0, "\(r.stderr)")
        return (dir, dir + "/state")
    }

    /// The stored manifest's layer digests, from the store's refs.json and blobs.
    func layerDigests(_ state: String, _ image: String = "layered") throws -> [String] {
        let refs = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: state + "/images/refs.json"))) as! [String: Any]
        let rec = (refs["refs"] as! [String: Any])[ImageTests.ref(image)] as! [String: Any]
        let hex = (rec["manifest"] as! String).dropFirst(7)
        let m = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: state + "/images/blobs/sha256/" + hex))) as! [String: Any]
        return (m["layers"] as! [[String: Any]]).map { $0["digest"] as! String }
    }

    @Test func anOCIArchiveExportIsReadBySkopeoAndUnpackedByUmoci() async throws {
        let (dir, state) = try await pulled("export-oci")
        let tar = dir + "/layered.tar"
        let r = try await Harness.run(["image", "export", "--state-dir", state, ImageTests.ref("layered"), "oci-archive:" + tar])
        #expect(r.status == 0, "\(r.stderr)")
        // Written by the agent as the unprivileged user, never as root.
        let attrs = try FileManager.default.attributesOfItem(atPath: tar)
        #expect((attrs[.ownerAccountID] as? NSNumber)?.uint32Value == Harness.user.uid)
        let inspect = try shell("skopeo inspect oci-archive:\(tar)")
        let info = try JSONSerialization.jsonObject(with: Data(inspect.utf8)) as! [String: Any]
        #expect((info["Layers"] as? [String]) == (try layerDigests(state)))
        let out = try shell("""
        mkdir -p \(dir)/layout && tar -xf \(tar) -C \(dir)/layout
        umoci unpack --rootless --image \(dir)/layout:1 \(dir)/bundle >/dev/null
        cat \(dir)/bundle/rootfs/etc/added; test ! -e \(dir)/bundle/rootfs/etc/lower-file && echo lower-gone
        """)
        #expect(out.contains("from the upper layer") && out.contains("lower-gone"), "\(out)")
        // An existing archive is refused, and replaced with --force.
        let again = try await Harness.run(["image", "export", "--state-dir", state, ImageTests.ref("layered"), "oci-archive:" + tar])
        #expect(again.status == 3 && again.stderr.contains("exists") && again.stderr.contains("--force"), "\(again.stderr)")
        let forced = try await Harness.run(["image", "export", "--state-dir", state, "--force", ImageTests.ref("layered"), "oci-archive:" + tar])
        #expect(forced.status == 0, "\(forced.stderr)")
        // Exports of the same image are the same bytes; no temporary file is left beside them.
        let second = dir + "/again.tar"
        _ = try await Harness.run(["image", "export", "--state-dir", state, ImageTests.ref("layered"), "oci-archive:" + second])
        #expect(FileManager.default.contents(atPath: tar) == FileManager.default.contents(atPath: second))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp") }.isEmpty)
    }

    @Test func aDockerArchiveListsTheLayersInOrderAndIsReadBySkopeo() async throws {
        let (dir, state) = try await pulled("export-docker")
        let tar = dir + "/saved.tar"
        let r = try await Harness.run(["image", "export", "--state-dir", state, ImageTests.ref("layered"), "docker-archive:" + tar + ":localhost/saved:2"])
        #expect(r.status == 0, "\(r.stderr)")
        let manifest = try shell("tar -xOf \(tar) manifest.json")
        let m = try JSONSerialization.jsonObject(with: Data(manifest.utf8)) as! [[String: Any]]
        #expect(m.count == 1 && (m[0]["RepoTags"] as? [String]) == ["localhost/saved:2"])
        let layers = (m[0]["Layers"] as! [String])
        #expect(layers == (try layerDigests(state)).map { "blobs/sha256/" + $0.dropFirst(7) })
        // Each named file is in the archive; skopeo reads it (and computes the diff_ids).
        let names = try shell("tar -tf \(tar)")
        #expect(layers.allSatisfy { names.contains($0) } && names.contains(m[0]["Config"] as! String))
        let inspect = try shell("skopeo inspect docker-archive:\(tar)")
        #expect(inspect.contains("\"Layers\"") && inspect.contains("IMAGE_VAR=from-image"), "\(inspect)")
        // The agent's own import takes it back.
        let imp = try await Harness.run(["image", "import", "--state-dir", dir + "/state2", "docker-archive:" + tar, "--tag", "localhost/saved:2"])
        #expect(imp.status == 0, "\(imp.stderr)")
    }

    @Test func aPushIsReadBySkopeoAndPulledIntoAFreshStoreAndASecondPushSendsNoBlob() async throws {
        let (dir, state) = try await pulled("push")
        let repo = "pushed-" + UUID().uuidString.prefix(8).lowercased()
        let dest = ImageTests.registry + "/" + repo + ":1"
        // The layers are busybox's (in repository busybox of the same registry): they are
        // mounted, not uploaded; the config is the layered image's, in repository layered.
        let r = try await Harness.run(["image", "push", "--state-dir", state, ImageTests.ref("layered"), dest])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("0 uploaded") && r.stdout.contains("mounted"), "\(r.stdout)")
        let log = try Self.requests("plain", repo)
        #expect(log.contains { $0.contains("POST /v2/\(repo)/blobs/uploads/?mount=") && $0.contains("\" 201 ") }, "\(log)")
        #expect(!log.contains { $0.contains("PUT /v2/\(repo)/blobs/uploads/") }, "\(log)")
        let inspect = try shell("skopeo inspect --tls-verify=false docker://\(dest)")
        let pushedDigest = (try JSONSerialization.jsonObject(with: Data(inspect.utf8)) as! [String: Any])["Digest"] as! String
        #expect(r.stdout.contains(pushedDigest))
        let fresh = try await Harness.run(["image", "pull", "--state-dir", dir + "/fresh", dest])
        #expect(fresh.status == 0 && fresh.stdout.contains(pushedDigest), "\(fresh.stderr)")
        // Again: every blob answers HEAD 200, nothing is posted or put but the manifest.
        let before = try Self.requests("plain", repo).count
        let again = try await Harness.run(["image", "push", "--state-dir", state, ImageTests.ref("layered"), dest])
        #expect(again.status == 0 && again.stdout.contains("0 uploaded, 0 mounted"), "\(again.stdout) \(again.stderr)")
        let second = Array(try Self.requests("plain", repo).dropFirst(before))
        #expect(second.filter { $0.contains("\"HEAD ") }.count == 4, "\(second)")
        #expect(second.filter { $0.contains("\"POST ") || $0.contains("\"PATCH ") || $0.contains("/blobs/uploads/") }.isEmpty, "\(second)")
        #expect(second.filter { $0.contains("\"PUT /v2/\(repo)/manifests/1") }.count == 1, "\(second)")
    }

    @Test func aTokenRegistryTakesAPushOnlyWithTheOperatorsLoginAndLargeBlobsGoInChunks() async throws {
        let (dir, state) = try await pulled("push-auth")
        let repo = "up-" + UUID().uuidString.prefix(8).lowercased()
        let dest = ImageAuthTests.registry + "/" + repo + ":1"
        let without = try await Harness.run(["image", "push", "--state-dir", state, ImageTests.ref("layered"), dest],
                                            environment: ["REGISTRY_AUTH_FILE": dir + "/none.json"])
        #expect(without.status == 3 && without.stderr.contains("registry \(ImageAuthTests.registry)"), "\(without.stderr)")
        #expect(!(try Self.requests("auth", repo)).contains { $0.contains("uploads") })
        let right = Data("ci:secret".utf8).base64EncodedString()
        try Harness.write(#"{"auths": {"\#(ImageAuthTests.registry)": {"auth": "\#(right)"}}}"#, to: dir + "/auth.json", mode: 0o600)
        // busybox's layer (about 1 MB) above the 100 kB limit: 300 kB chunks; the rest whole.
        let r = try await Harness.run(["image", "push", "--state-dir", state, "--monolithic-limit", "100000", "--chunk-size", "300000",
                                       ImageTests.ref("layered"), dest], environment: ["REGISTRY_AUTH_FILE": dir + "/auth.json"])
        #expect(r.status == 0 && r.stdout.contains("4 uploaded"), "\(r.stdout) \(r.stderr)")
        let log = try Self.requests("auth", repo)
        let patches = log.filter { $0.contains("\"PATCH /v2/\(repo)/blobs/uploads/") && $0.contains("\" 202 ") }
        #expect(patches.count == 4, "\(log)")
        #expect(log.filter { $0.contains("\"PUT /v2/\(repo)/blobs/uploads/") && $0.contains("\" 201 ") }.count == 4, "\(log)")
        let pull = try await Harness.run(["image", "pull", "--state-dir", dir + "/fresh", dest], environment: ["REGISTRY_AUTH_FILE": dir + "/auth.json"])
        #expect(pull.status == 0, "\(pull.stderr)")
    }

    @Test func aMountTheRegistryRefusesFallsBackToTheUploadItOpened() async throws {
        let dir = try Harness.scratch("push-mount-202")
        // Stored under a repository of the registry that does not hold the blobs: the agent
        // tries to mount from it, the registry answers 202 with an upload, which is used.
        let ghost = ImageTests.registry + "/ghost-" + UUID().uuidString.prefix(8).lowercased() + ":1"
        let imp = try await Harness.run(["image", "import", "--state-dir", dir + "/state", "oci:\(ImageTests.layouts)/layered:1", "--tag", ghost])
        #expect(imp.status == 0, "\(imp.stderr)")
        let repo = "target-" + UUID().uuidString.prefix(8).lowercased()
        let r = try await Harness.run(["image", "push", "--state-dir", dir + "/state", ghost, ImageTests.registry + "/" + repo + ":1"])
        #expect(r.status == 0 && r.stdout.contains("4 uploaded, 0 mounted"), "\(r.stdout) \(r.stderr)")
        let log = try Self.requests("plain", repo)
        #expect(log.filter { $0.contains("?mount=") && $0.contains("\" 202 ") }.count == 4, "\(log)")
        #expect(log.filter { $0.contains("\"PUT /v2/\(repo)/blobs/uploads/") && $0.contains("\" 201 ") }.count == 4, "\(log)")
        #expect(!log.contains { $0.contains("\"POST /v2/\(repo)/blobs/uploads/ ") }, "\(log)")
    }

    @Test func aPushOfAnImageNotInTheStoreOrToABadReferenceFailsClearly() async throws {
        let dir = try Harness.scratch("push-bad")
        let missing = try await Harness.run(["image", "push", "--state-dir", dir + "/state", ImageTests.ref("nothing-here")])
        #expect(missing.status == 3 && missing.stderr.contains("is not in the image store"), "\(missing.stderr)")
        let bad = try await Harness.run(["image", "push", "--state-dir", dir + "/state", "UPPER/Case:1"])
        #expect(bad.status == 2, "\(bad.stderr)")
    }
}
