import Foundation
import Testing

/// Container images end to end, against the registry ci/test.sh starts on 127.0.0.1
/// (`$AGENT_TEST_REGISTRY`) with the images ci/make-test-images.py pushed to it.
@Suite(.serialized) struct ImageTests {
    static var registry: String {
        guard let r = ProcessInfo.processInfo.environment["AGENT_TEST_REGISTRY"], !r.isEmpty else {
            Issue.record("AGENT_TEST_REGISTRY is not set: run the tests through ci/test.sh")
            return "127.0.0.1:1"
        }
        return r
    }
    static func ref(_ name: String) -> String { registry + "/" + name + ":1" }
    static var policy: String { Harness.testPolicy("images") }

    static func sha256(_ data: Data) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        try p.run()
        input.fileHandleForWriting.write(data)
        try input.fileHandleForWriting.close()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(String(decoding: out, as: UTF8.self).prefix(64))
    }

    /// A state folder of the test's own, owned by the test user.
    let state: String
    init() throws { state = try Harness.scratch("images") + "/state" }

    func agent(_ args: [String]) async throws -> Harness.Result {
        try await Harness.run(args)
    }

    /// Files of the store's blobs folder.
    func blobs() -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: state + "/images/blobs/sha256")) ?? []
    }

    @Test func pullStoresVerifiedBlobsAndListsInspectsRemoves() async throws {
        let r = try await agent(["image", "pull", "--state-dir", state, Self.ref("layered")])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.hasPrefix(Self.ref("layered") + " sha256:"))
        // config, 3 layers, manifest; every file named by the digest of its content.
        #expect(blobs().count == 5)
        for b in blobs() {
            let data = try Data(contentsOf: URL(fileURLWithPath: state + "/images/blobs/sha256/" + b))
            let sha = try Self.sha256(data)
            #expect(sha == b)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: state + "/images/snapshots/sha256").count == 3)
        let ls = try await agent(["image", "ls", "--state-dir", state])
        #expect(ls.status == 0 && ls.stdout.contains(Self.ref("layered")), "\(ls.stdout)\(ls.stderr)")
        let inspect = try await agent(["image", "inspect", "--state-dir", state, Self.ref("layered")])
        #expect(inspect.status == 0, "\(inspect.stderr)")
        let doc = try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as! [String: Any]
        #expect((doc["layers"] as! [String]).count == 3)
        #expect(doc["workingDir"] as? String == "/opt")
        let rm = try await agent(["image", "rm", "--state-dir", state, Self.ref("layered")])
        #expect(rm.status == 0)
        let again = try await agent(["image", "inspect", "--state-dir", state, Self.ref("layered")])
        #expect(again.status == 1 && again.stderr.contains("is not in the image store"))
    }

    @Test func pruneRemovesWhatNoReferenceNeedsButNeverARunningJobsSnapshots() async throws {
        for name in ["busybox", "layered"] {
            let r = try await agent(["image", "pull", "--state-dir", state, Self.ref(name)])
            #expect(r.status == 0, "\(r.stderr)")
        }
        // busybox's one layer is layered's base layer: 2 manifests, 2 configs, 3 layers.
        #expect(blobs().count == 7)
        let snapshots = { (try? FileManager.default.contentsOfDirectory(atPath: self.state + "/images/snapshots/sha256")) ?? [] }
        #expect(snapshots().count == 3)
        // A job on layered runs while its reference is removed and the store pruned. The
        // step must outlast the `image rm` and `image prune` below: with 2 s it once ended
        // first on a loaded machine, its leases went with it, and prune kept "0 in use".
        let f = try JobFixture("""
        {"version": 1, "id": "lease", "image": "\(Self.ref("layered"))", "steps": [{"name": "wait", "run": "sleep 8; cat /etc/added"}]}
        """)
        // Returns once the step has started (its snapshots are leased before that).
        let job = try Harness.start(["run-job", f.job, "--output", f.results, "--state-dir", state, "--policy", Self.policy,
                                     "--progress", "plain"], until: "[wait 1/1]")
        #expect(job.stderr.contains("[wait 1/1]"), "\(job.stderr)")
        #expect(try await agent(["image", "rm", "--state-dir", state, Self.ref("layered")]).status == 0)
        let during = try await agent(["image", "prune", "--state-dir", state])
        #expect(during.status == 0 && during.stdout.contains("2 snapshots in use kept"), "\(during.stdout)\(during.stderr)")
        #expect(blobs().count == 3)  // busybox's manifest, config and layer
        #expect(snapshots().count == 3)
        job.process.waitUntilExit()
        #expect(job.process.terminationStatus == 0)
        #expect(try f.read("logs/01-wait.log").contains(" out from the upper layer"))
        let after = try await agent(["image", "prune", "--state-dir", state])
        #expect(after.stdout.contains("removed 0 blobs and 2 snapshots"), "\(after.stdout)")
        #expect(snapshots().count == 1)
        let exec = try await Harness.exec(["--state-dir", state, "--policy", Self.policy, "--image", Self.ref("busybox"), "--pull", "never"],
                                          ["/bin/true"])
        #expect(exec.status == 0, "\(exec.stderr)")
    }

    @Test func concurrentPullsOfOneImageBothSucceedAndStoreEachBlobOnce() async throws {
        async let a = agent(["image", "pull", "--state-dir", state, Self.ref("layered")])
        async let b = agent(["image", "pull", "--state-dir", state, Self.ref("layered")])
        let (ra, rb) = try await (a, b)
        #expect(ra.status == 0 && rb.status == 0, "\(ra.stderr)\(rb.stderr)")
        #expect(ra.stdout == rb.stdout)
        #expect(blobs().count == 5)
        #expect(try FileManager.default.contentsOfDirectory(atPath: state + "/images/snapshots/sha256").count == 3)
        #expect(try FileManager.default.contentsOfDirectory(atPath: state + "/images/tmp").isEmpty)
    }

    @Test func aJobRunsOnAnImageAndAWhiteoutHidesTheLowerFile() async throws {
        let f = try JobFixture("""
        {"version": 1, "id": "on-image", "image": "\(Self.ref("layered"))", "env": {"JOB_VAR": "job"}, "steps": [
          {"name": "look", "run": "cat /etc/added; test ! -e /etc/lower-file && echo lower-gone; test ! -e /opt/old/a && cat /opt/old/b; echo $IMAGE_VAR $JOB_VAR; pwd; echo made > /workspace/out"},
          {"name": "next", "run": "cat /workspace/out; busybox | head -1 | cut -c1-7"}
        ]}
        """)
        let r = try await f.run(["--policy", Self.policy])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try f.stepStates() == ["succeeded", "succeeded"])
        let log = try f.read("logs/01-look.log")
        for line in ["from the upper layer", "lower-gone", "b", "from-image job", "/workspace"] {
            #expect(log.contains(" out " + line), "\(log)")
        }
        let image = try f.status()["image"] as? [String: Any]
        #expect(image?["reference"] as? String == Self.ref("layered"))
        #expect((image?["digest"] as? String)?.hasPrefix("sha256:") == true)
        // The test user has subordinate ranges (ci/test.sh): the steps map them, so the files carry the layers' owners.
        #expect(image?["owners"] as? String == "subordinate")
        #expect(try f.read("logs/02-next.log").contains(" out made"))
        #expect(try f.read("logs/02-next.log").contains(" out BusyBox"))
        // The second run finds the image in the store: nothing more is fetched (pull if-not-present).
        let again = try await f.run(["--policy", Self.policy, "--force"])
        #expect(again.status == 0, "\(again.stderr)")
    }

    /// The layouts ci/make-test-images.py pushed from.
    static var layouts: String { URL(fileURLWithPath: Harness.agentBinary).deletingLastPathComponent().deletingLastPathComponent().path + "/registry/layouts" }

    @Test func anImportedOCILayoutRunsAJobWithPullNever() async throws {
        let f = try JobFixture("""
        {"version": 1, "id": "imported", "image": "localhost/layered:1", "pull": "never", "steps": [
          {"name": "look", "run": "cat /etc/added; test ! -e /etc/lower-file && echo lower-gone"}
        ]}
        """)
        let imp = try await agent(["image", "import", "--state-dir", f.state, "oci:" + Self.layouts + "/layered:1", "--tag", "localhost/layered:1"])
        #expect(imp.status == 0, "\(imp.stderr)")
        #expect(imp.stdout.hasPrefix("localhost/layered:1 sha256:"))
        let r = try await f.run(["--policy", Self.policy])
        #expect(r.status == 0, "\(r.stderr)")
        let log = try f.read("logs/01-look.log")
        #expect(log.contains(" out from the upper layer") && log.contains(" out lower-gone"), "\(log)")
        // Not in the store and "pull": "never": the job fails before any step (exit 3), naming it.
        let g = try JobFixture("""
        {"version": 1, "id": "absent", "image": "localhost/absent:1", "pull": "never", "steps": [{"name": "a", "run": "true"}]}
        """)
        let absent = try await g.run(["--policy", Self.policy])
        #expect(absent.status == 3 && absent.stderr.contains("localhost/absent:1 is not in the image store"), "\(absent.stderr)")
    }

    @Test func anExportedLayoutImportsBackAndRuns() async throws {
        #expect(try await agent(["image", "pull", "--state-dir", state, Self.ref("layered")]).status == 0)
        let out = try Harness.scratch("export") + "/layout"
        let exp = try await agent(["image", "export", "--state-dir", state, Self.ref("layered"), "oci:" + out + ":v2"])
        #expect(exp.status == 0, "\(exp.stderr)")
        let other = try Harness.scratch("export-state") + "/state"
        let imp = try await agent(["image", "import", "--state-dir", other, "oci:" + out + ":v2", "--tag", "localhost/copy:2"])
        #expect(imp.status == 0, "\(imp.stderr)")
        let r = try await Harness.exec(["--state-dir", other, "--policy", Self.policy, "--image", "localhost/copy:2", "--pull", "never"],
                                       ["/bin/cat", "/etc/added"])
        #expect(r.status == 0 && r.stdout == "from the upper layer\n", "\(r.stdout)\(r.stderr)")
    }

    @Test func anImportedLayoutWithATamperedBlobStoresNothing() async throws {
        let copy = try Harness.scratch("layout") + "/layout"
        try FileManager.default.copyItem(atPath: Self.layouts + "/tampered", toPath: copy)
        let digest = try String(contentsOfFile: Harness.fixtures + "/tampered-digest", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let blob = copy + "/blobs/sha256/" + digest.dropFirst(7)
        var data = try Data(contentsOf: URL(fileURLWithPath: blob))
        data[0] ^= 0xff
        try data.write(to: URL(fileURLWithPath: blob))
        let u = Harness.user
        _ = chown(copy, u.uid, u.gid)
        let r = try await agent(["image", "import", "--state-dir", state, "oci:" + copy + ":1", "--tag", "localhost/t:1"])
        #expect(r.status == 3 && r.stderr.contains(digest) && r.stderr.contains("nothing was stored"), "\(r.stderr)")
        #expect(!blobs().contains(String(digest.dropFirst(7))))
    }

    @Test func aJobNamingAnImageIsRefusedWithoutThePolicy() async throws {
        let f = try JobFixture("""
        {"version": 1, "id": "refused", "image": "\(Self.ref("busybox"))", "steps": [{"name": "a", "run": "true"}]}
        """)
        let r = try await f.run()
        #expect(r.status == 2)
        #expect(r.stderr.contains("image: \"\(Self.ref("busybox"))\"") && r.stderr.contains("images.allowedRegistries"), "\(r.stderr)")
        let stored = (try? FileManager.default.contentsOfDirectory(atPath: f.state + "/images/blobs/sha256")) ?? []
        #expect(stored.isEmpty)
    }

    @Test(arguments: ["single", "subordinate"])
    func execRunsOnAnImageInBothIdMappings(idMap: String) async throws {
        let r = try await Harness.exec(["--state-dir", state, "--policy", Self.policy, "--id-map", idMap, "--verbose",
                                        "--image", Self.ref("busybox")],
                                       ["/bin/sh", "-c", "id -u; ls /bin/busybox; echo ok"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("0\n/bin/busybox\nok"), "\(r.stdout)")
        #expect(r.stderr.contains("id mapping: \(idMap)"), "\(r.stderr)")
    }

    @Test func execWithoutACommandRunsTheImagesCmdInItsWorkingDir() async throws {
        let r = try await Harness.run(["exec", "--state-dir", state, "--policy", Self.policy, "--image", Self.ref("layered")])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "image-cmd in /opt from-image\n", "\(r.stdout)")
        let refused = try await Harness.run(["exec", "--state-dir", state, "--image", Self.ref("layered")])
        #expect(refused.status == 125 && refused.stderr.contains("images.allowedRegistries"), "\(refused.stderr)")
    }

    @Test func aBlobWithTheWrongDigestNamesItAndTheRegistryAndStoresNothing() async throws {
        let digest = try String(contentsOfFile: Harness.fixtures + "/tampered-digest", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let r = try await agent(["image", "pull", "--state-dir", state, Self.ref("tampered")])
        #expect(r.status == 3)
        #expect(r.stderr.contains(digest) && r.stderr.contains("registry \(Self.registry)") && r.stderr.contains("nothing was stored"), "\(r.stderr)")
        #expect(!blobs().contains(String(digest.dropFirst(7))))
        #expect(try FileManager.default.contentsOfDirectory(atPath: state + "/images/tmp").isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: state + "/images/snapshots/sha256").isEmpty)
        let ls = try await agent(["image", "ls", "--state-dir", state])
        #expect(!ls.stdout.contains("tampered"))
    }

    @Test(arguments: [
        ("hostile-dotdot", "../../../tmp/agent-escape", "leads out of the layer"),
        ("hostile-symlink", "evil/tmp/agent-escape", "passes through a symlink"),
        ("hostile-hardlink", "passwd", "leads out of the layer"),
        ("hostile-whiteout", "a/.wh...", "is a whiteout of \"..\""),
    ])
    func hostileLayersFailNamingImageLayerAndEntry(image: String, entry: String, problem: String) async throws {
        // A sentinel tree outside the store: nothing a layer does may change it.
        let sentinel = try Harness.scratch("sentinel")
        try Harness.write("keep\n", to: sentinel + "/file")
        let before = try FileManager.default.contentsOfDirectory(atPath: sentinel)
        let r = try await agent(["image", "pull", "--state-dir", state, Self.ref(image)])
        #expect(r.status == 3)
        #expect(r.stderr.contains(Self.ref(image) + ": layer sha256:") && r.stderr.contains("entry \"\(entry)\"")
                && r.stderr.contains(problem), "\(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: sentinel) == before)
        #expect(try String(contentsOfFile: sentinel + "/file", encoding: .utf8) == "keep\n")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/agent-escape"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: state + "/images/snapshots/sha256").isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: state + "/images/tmp").isEmpty)
    }
}

/// A registry that wants a Bearer token from a realm which gives one only for the
/// operator's login (ci/test.sh: auth "silly" plus ci/test-token-server.py).
@Suite(.serialized) struct ImageAuthTests {
    static var registry: String {
        guard let r = ProcessInfo.processInfo.environment["AGENT_TEST_AUTH_REGISTRY"], !r.isEmpty else {
            Issue.record("AGENT_TEST_AUTH_REGISTRY is not set: run the tests through ci/test.sh")
            return "127.0.0.1:1"
        }
        return r
    }

    @Test func aBearerRegistryNeedsTheOperatorsLoginAndGetsItFromRegistryAuthFile() async throws {
        let dir = try Harness.scratch("auth")
        let ref = Self.registry + "/private/busybox:1"
        let without = try await Harness.run(["image", "pull", "--state-dir", dir + "/state", ref],
                                            environment: ["REGISTRY_AUTH_FILE": dir + "/none.json"])
        #expect(without.status == 3)
        #expect(without.stderr.contains("registry \(Self.registry)") && without.stderr.contains("token from"), "\(without.stderr)")
        let wrong = Data("ci:wrong".utf8).base64EncodedString(), right = Data("ci:secret".utf8).base64EncodedString()
        try Harness.write(#"{"auths": {"\#(Self.registry)": {"auth": "\#(wrong)"}}}"#, to: dir + "/wrong.json", mode: 0o600)
        let refused = try await Harness.run(["image", "pull", "--state-dir", dir + "/state", ref],
                                            environment: ["REGISTRY_AUTH_FILE": dir + "/wrong.json"])
        #expect(refused.status == 3, "\(refused.stderr)")
        try Harness.write(#"{"auths": {"http://\#(Self.registry)/": {"auth": "\#(right)"}}}"#, to: dir + "/auth.json", mode: 0o600)
        let r = try await Harness.run(["image", "pull", "--state-dir", dir + "/state", ref],
                                      environment: ["REGISTRY_AUTH_FILE": dir + "/auth.json"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.hasPrefix(ref + " sha256:"))
    }
}

/// A proxy that answers each path's first request with 503 or 429 and Retry-After: 1.
@Suite struct ImageRetryTests {
    @Test func pullsRetry429And5xxHonouringRetryAfter() async throws {
        guard let registry = ProcessInfo.processInfo.environment["AGENT_TEST_FLAKY_REGISTRY"], !registry.isEmpty else {
            Issue.record("AGENT_TEST_FLAKY_REGISTRY is not set: run the tests through ci/test.sh")
            return
        }
        let dir = try Harness.scratch("retry")
        let started = Date()
        let r = try await Harness.run(["image", "pull", "--state-dir", dir + "/state", registry + "/layered:1"])
        #expect(r.status == 0, "\(r.stderr)")
        // Manifest, config and the layers each waited Retry-After (1 s) once (the layers
        // at the same time).
        #expect(Date().timeIntervalSince(started) >= 3)
        // The three layers were downloaded at the same time (the proxy holds each 0.5 s).
        let stats = Process()
        stats.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        stats.arguments = ["-fsS", "http://\(registry)/stats"]
        let out = Pipe()
        stats.standardOutput = out
        try stats.run()
        stats.waitUntilExit()
        let most = Int(String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)) ?? 0
        #expect(most >= 2 && most <= 3, "at most \(most) blob downloads at once")
    }
}

/// The htpasswd Basic registry of ci/test.sh, and the fault proxy in front of it: every blob
/// is redirected to another host name (`localhost:CDN`), whose first answer for each blob
/// is cut off half-way.
@Suite(.serialized) struct ImageFaultTests {
    static func env(_ name: String) -> String {
        guard let r = ProcessInfo.processInfo.environment[name], !r.isEmpty else {
            Issue.record("\(name) is not set: run the tests through ci/test.sh")
            return "127.0.0.1:1"
        }
        return r
    }

    func authFile(_ dir: String, _ registry: String, _ login: String) throws -> [String: String] {
        let path = dir + "/auth-\(UUID().uuidString.prefix(6)).json"
        try Harness.write(#"{"auths": {"\#(registry)": {"auth": "\#(Data(login.utf8).base64EncodedString())"}}}"#, to: path, mode: 0o600)
        return ["REGISTRY_AUTH_FILE": path]
    }

    func cdnStats() throws -> [String: Int] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        p.arguments = ["-fsS", "http://\(Self.env("AGENT_TEST_FAULT_CDN"))/stats"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        p.waitUntilExit()
        return try JSONSerialization.jsonObject(with: out.fileHandleForReading.readDataToEndOfFile()) as? [String: Int] ?? [:]
    }

    @Test func anHtpasswdBasicRegistryTakesOnlyTheOperatorsLogin() async throws {
        let registry = Self.env("AGENT_TEST_BASIC_REGISTRY")
        let dir = try Harness.scratch("basic")
        let ref = registry + "/private/layered:1"
        let none = try await Harness.run(["image", "pull", "--state-dir", dir + "/s1", ref],
                                         environment: ["REGISTRY_AUTH_FILE": dir + "/none.json"])
        #expect(none.status == 3 && none.stderr.contains(registry) && none.stderr.contains("no login"), "\(none.stderr)")
        let wrong = try await Harness.run(["image", "pull", "--state-dir", dir + "/s2", ref], environment: try authFile(dir, registry, "ci:wrong"))
        #expect(wrong.status == 3 && wrong.stderr.contains(registry), "\(wrong.stderr)")
        #expect(!wrong.stderr.contains("ci:wrong") && !wrong.stderr.contains(Data("ci:wrong".utf8).base64EncodedString()))
        let right = try await Harness.run(["image", "pull", "--state-dir", dir + "/s3", ref], environment: try authFile(dir, registry, "ci:secret"))
        #expect(right.status == 0, "\(right.stderr)")
        #expect(right.stdout.hasPrefix(ref + " sha256:"), "\(right.stdout)")
    }

    @Test func aCutBlobResumesWithRangeAndARedirectToAnotherHostGetsNoAuthorization() async throws {
        let registry = Self.env("AGENT_TEST_FAULT_REGISTRY")
        let dir = try Harness.scratch("fault")
        let before = try cdnStats()
        let r = try await Harness.run(["image", "pull", "--state-dir", dir + "/state", registry + "/private/layered:1"],
                                      environment: try authFile(dir, registry, "ci:secret"))
        #expect(r.status == 0, "\(r.stderr)")
        let after = try cdnStats()
        let cuts = (after["cuts"] ?? 0) - (before["cuts"] ?? 0), ranges = (after["ranges"] ?? 0) - (before["ranges"] ?? 0)
        // Config and three layers: each was cut once and each cut was resumed with a Range
        // (not downloaded again from the start).
        #expect(cuts >= 1 && ranges >= cuts, "cuts \(cuts), ranges \(ranges)")
        #expect(after["authorization"] == before["authorization"], "the redirect target was sent the agent's Authorization: \(after)")
        // What was stored is the image: a job runs on it.
        let run = try await Harness.run(["exec", "--state-dir", dir + "/state", "--policy", Harness.testPolicy("images"), "--image", registry + "/private/layered:1", "--pull", "never",
                                         "--", "/bin/sh", "-c", "echo resumed"], environment: try authFile(dir, registry, "ci:secret"))
        #expect(run.status == 0 && run.stdout.contains("resumed"), "\(run.stderr)")
    }
}

/// The store's budget (policy `images.storeMaxBytes`): least recently used images go first,
/// never one a running step holds, never the one just pulled.
@Suite(.serialized) struct ImageBudgetTests {
    let dir: String
    var state: String { dir + "/state" }
    init() throws { dir = try Harness.scratch("budget") }

    func policy(_ bytes: UInt64) throws -> String {
        let path = dir + "/policy-\(bytes).json"
        try Harness.write(#"{"images": {"allowedRegistries": ["127.0.0.1"], "storeMaxBytes": \#(bytes)}}"#, to: path)
        return path
    }

    func refs() async throws -> Set<String> {
        let ls = try await Harness.run(["image", "ls", "--state-dir", state])
        return Set(ls.stdout.split(separator: "\n").compactMap { $0.split(separator: "\t").first.map(String.init) }
            .filter { $0.contains(ImageTests.registry) })
    }

    func usage(_ policy: String) async throws -> UInt64 {
        let df = try await Harness.run(["image", "df", "--state-dir", state, "--policy", policy])
        #expect(df.status == 0, "\(df.stderr)")
        return UInt64(df.stdout.split(separator: " ")[1]) ?? 0
    }

    @Test func aPullPastTheBudgetEvictsTheLeastRecentlyUsedButKeepsWhatItPulled() async throws {
        let tiny = try policy(1)
        let a = try await Harness.run(["image", "pull", "--state-dir", state, "--policy", tiny, ImageTests.ref("busybox")])
        #expect(a.status == 0, "\(a.stderr)")
        #expect(a.stderr.contains("over its budget of 1 (images.storeMaxBytes)"), "\(a.stderr)")
        let b = try await Harness.run(["image", "pull", "--state-dir", state, "--policy", tiny, ImageTests.ref("layered")])
        #expect(b.status == 0, "\(b.stderr)")
        #expect(b.stderr.contains("evicted \(ImageTests.ref("busybox"))"), "\(b.stderr)")
        #expect(try await refs() == [ImageTests.ref("layered")])
        // What is left still runs.
        let run = try await Harness.exec(["--state-dir", state, "--policy", tiny, "--image", ImageTests.ref("layered"), "--pull", "never"], ["/bin/true"])
        #expect(run.status == 0, "\(run.stderr)")
    }

    @Test func theOrderIsLastUseAndALeasedImageIsNeverEvicted() async throws {
        let roomy = try policy(1 << 40)
        for name in ["busybox", "layered"] {
            #expect(try await Harness.run(["image", "pull", "--state-dir", state, "--policy", roomy, ImageTests.ref(name)]).status == 0)
        }
        try await Task.sleep(for: .milliseconds(1100))
        #expect(try await Harness.run(["image", "pull", "--state-dir", state, "--policy", roomy, ImageTests.ref("user-numeric")]).status == 0)
        try await Task.sleep(for: .milliseconds(1100))
        // busybox is used last: layered is now the least recently used.
        let use = try await Harness.exec(["--state-dir", state, "--policy", roomy, "--image", ImageTests.ref("busybox"), "--pull", "never"], ["/bin/true"])
        #expect(use.status == 0, "\(use.stderr)")
        let total = try await usage(roomy)
        let prune = try await Harness.run(["image", "prune", "--state-dir", state, "--policy", try policy(total - 1)])
        #expect(prune.status == 0, "\(prune.stderr)")
        #expect(prune.stdout.contains("evicted \(ImageTests.ref("layered"))"), "\(prune.stdout)")
        #expect(try await refs() == [ImageTests.ref("busybox"), ImageTests.ref("user-numeric")])
        #expect(try await usage(roomy) < total)

        // A step running on user-numeric holds it: a budget of 1 byte evicts busybox only.
        let f = try JobFixture("""
        {"version": 1, "id": "held", "image": "\(ImageTests.ref("user-numeric"))", "steps": [{"name": "wait", "run": "sleep 2"}]}
        """)
        let job = try Harness.start(["run-job", f.job, "--output", f.results, "--state-dir", state, "--policy", roomy,
                                     "--progress", "plain"], until: "[wait 1/1]")
        let squeezed = try await Harness.run(["image", "prune", "--state-dir", state, "--policy", try policy(1)])
        #expect(squeezed.stdout.contains("evicted \(ImageTests.ref("busybox"))"), "\(squeezed.stdout)")
        #expect(squeezed.stdout.contains("what is left is in use"), "\(squeezed.stdout)")
        #expect(try await refs() == [ImageTests.ref("user-numeric")])
        job.process.waitUntilExit()
        #expect(job.process.terminationStatus == 0)
    }
}

/// Docker's credential helpers (`credHelpers`, `credsStore`): the operator's programs on the
/// agent's PATH, asked for the Basic registry's login.
@Suite struct CredentialHelperTests {
    func setUp(_ helpers: [String: String], config: String) throws -> (dir: String, env: [String: String]) {
        let dir = try Harness.scratch("credhelper")
        for (name, script) in helpers {
            try Harness.write("#!/bin/sh\n" + script + "\n", to: dir + "/bin/docker-credential-" + name, mode: 0o755)
        }
        try Harness.write(config, to: dir + "/config.json", mode: 0o600)
        return (dir, ["REGISTRY_AUTH_FILE": dir + "/config.json", "PATH": dir + "/bin:/usr/bin:/bin"])
    }

    var registry: String { ImageFaultTests.env("AGENT_TEST_BASIC_REGISTRY") }

    @Test func aRegistrysHelperGivesTheLoginAndOthersAreNotAsked() async throws {
        let s = try setUp([
            "agenttest": #"read reg; [ "$1" = get ] || exit 2; case "$reg" in \#(registry)) printf '{"ServerURL":"%s","Username":"ci","Secret":"secret"}' "$reg";; *) echo "credentials not found in native keychain"; exit 1;; esac"#,
            "never": "echo asked >> \"$(dirname \"$0\")/../never-asked\"; exit 1",
        ], config: #"{"credHelpers": {"\#(registry)": "agenttest", "other.example": "never"}}"#)
        let r = try await Harness.run(["image", "pull", "--state-dir", s.dir + "/state", registry + "/private/layered:1"], environment: s.env)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: s.dir + "/never-asked"))
    }

    @Test func aStoreWithoutTheLoginMeansNoLoginAndABrokenHelperIsNamed() async throws {
        let s = try setUp(["empty": #"echo "credentials not found in native keychain"; exit 1"#,
                           "broken": "echo 'secret-ish output'; exit 3",
                           "slow": "sleep 60"],
                          config: #"{"credsStore": "empty"}"#)
        let none = try await Harness.run(["image", "pull", "--state-dir", s.dir + "/s1", registry + "/private/layered:1"], environment: s.env)
        #expect(none.status == 3 && none.stderr.contains("no login"), "\(none.stderr)")
        try Harness.write(#"{"credsStore": "broken"}"#, to: s.dir + "/config.json", mode: 0o600)
        let broken = try await Harness.run(["image", "pull", "--state-dir", s.dir + "/s2", registry + "/private/layered:1"], environment: s.env)
        #expect(broken.status == 3 && broken.stderr.contains("docker-credential-broken failed with status 3"), "\(broken.stderr)")
        #expect(!broken.stderr.contains("secret-ish"))
        try Harness.write(#"{"credsStore": "missing"}"#, to: s.dir + "/config.json", mode: 0o600)
        let missing = try await Harness.run(["image", "pull", "--state-dir", s.dir + "/s3", registry + "/private/layered:1"], environment: s.env)
        #expect(missing.status == 3 && missing.stderr.contains("docker-credential-missing is not on the agent's PATH"), "\(missing.stderr)")
        try Harness.write(#"{"credsStore": "../../bin/sh"}"#, to: s.dir + "/config.json", mode: 0o600)
        let bad = try await Harness.run(["image", "pull", "--state-dir", s.dir + "/s4", registry + "/private/layered:1"], environment: s.env)
        #expect(bad.status == 3 && bad.stderr.contains("is not a valid helper name"), "\(bad.stderr)")
        try Harness.write(#"{"credsStore": "slow"}"#, to: s.dir + "/config.json", mode: 0o600)
        let started = Date()
        let slow = try await Harness.run(["image", "pull", "--state-dir", s.dir + "/s5", registry + "/private/layered:1"], environment: s.env)
        #expect(slow.status == 3 && slow.stderr.contains("did not answer within 10 s"), "\(slow.stderr)")
        #expect(Date().timeIntervalSince(started) < 30)
    }
}
