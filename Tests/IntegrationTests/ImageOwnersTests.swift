import Foundation
import Testing

/// Image file owners (README "Owners"): in subordinate mode the snapshot's files carry the
/// layer's owners as the steps' mapping shows them; in single mode every file is the
/// agent's and the owner is in `user.rootlesscontainers`. The `owners` image
/// (ci/make-test-images.py) has files of 1500:1600, a setuid and a setgid file, a file
/// capability, an owner outside the test user's 65536 subordinate ids (70000), folders only
/// their owner may enter and a symlink leading out of the image.
@Suite(.serialized) struct ImageOwnersTests {
    static var image: String { ImageTests.ref("owners") }
    static var policy: String { Harness.testPolicy("images") }

    /// A state folder of the test's own, owned by the test user.
    let state: String
    init() throws { state = try Harness.scratch("owners") + "/state" }

    /// The test user's first range in /etc/subuid or /etc/subgid (ci/test.sh's useradd made it).
    static func range(_ file: String) throws -> (start: UInt32, count: UInt32) {
        let name = Harness.user.name
        for line in try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n") {
            let f = line.split(separator: ":")
            if f.count == 3, f[0] == name, let s = UInt32(f[1]), let c = UInt32(f[2]) { return (s, c) }
        }
        Issue.record("\(name) has no range in \(file): run the tests through ci/test.sh")
        return (0, 0)
    }

    func exec(_ idMap: String, _ script: String, extra: [String] = []) async throws -> Harness.Result {
        try await Harness.exec(["--state-dir", state, "--policy", Self.policy, "--id-map", idMap, "--image", Self.image] + extra,
                               ["/bin/sh", "-c", script])
    }

    /// The snapshot folders of the store, by name.
    func snapshotNames() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: state + "/images/snapshots/sha256")) ?? []).sorted()
    }

    /// The image's top snapshot folder in the mode `agent image inspect` uses (auto, as jobs).
    func topSnapshot() async throws -> String {
        let r = try await Harness.run(["image", "inspect", "--state-dir", state, Self.image])
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        return (doc["snapshots"] as! [String]).last!
    }

    /// An xattr of `path` (not following a symlink), hex, or nil: Python's os.getxattr, as
    /// the test process is root and Foundation has no xattr call.
    static func xattr(_ path: String, _ name: String) throws -> String? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = ["-c", "import os,sys\ntry: print(os.getxattr(sys.argv[1], sys.argv[2], follow_symlinks=False).hex())\nexcept OSError: pass",
                       path, name]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? nil : text
    }

    static func owner(_ path: String) -> (uid: UInt32, gid: UInt32, mode: UInt32)? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        return (st.st_uid, st.st_gid, UInt32(st.st_mode) & 0o7777)
    }

    /// Little-endian hex of a 32-bit value, as the capability xattr stores it.
    static func le32(_ v: UInt32) -> String { withUnsafeBytes(of: v.littleEndian) { $0.map { String(format: "%02x", $0) }.joined() } }

    @Test func subordinateModeGivesFilesTheLayersOwnersModesAndCapabilities() async throws {
        // What the symlink leading out names: chowning the link must never reach it.
        let sentinel = "/tmp/agent-owners-sentinel"
        try? FileManager.default.removeItem(atPath: sentinel)
        try Harness.write("keep\n", to: sentinel)
        let u = Harness.user
        chown(sentinel, u.uid, u.gid)
        defer { try? FileManager.default.removeItem(atPath: sentinel) }

        let r = try await exec("subordinate", """
            stat -c '%n %u:%g %a' /opt/owned /opt/owned/file /opt/owned/hard /opt/suid /opt/sgid /opt/cap /opt/far /opt/private /opt/private/deeper /opt/private/deeper/x
            stat -c '%n %u:%g' /opt/owned/link /opt/link-out; cat /opt/owned/file /opt/private/secret; id -u
            """)
        #expect(r.status == 0, "\(r.stderr)")
        for line in ["/opt/owned 1500:1600 750", "/opt/owned/file 1500:1600 640", "/opt/owned/hard 1500:1600 640",
                     "/opt/suid 1500:1600 4755", "/opt/sgid 0:1600 2755", "/opt/cap 0:0 755", "/opt/far 0:0 644",
                     "/opt/private 1500:1600 700", "/opt/private/deeper 1500:1600 500", "/opt/private/deeper/x 1501:1601 400",
                     "/opt/owned/link 1500:1600", "/opt/link-out 1500:1600", "owned", "private", "0"] {
            #expect(r.stdout.split(separator: "\n").contains(Substring(line)), "\(line) missing in:\n\(r.stdout)")
        }
        // The owner outside the range: a warning naming the path and the id; the pull succeeded.
        #expect(r.stderr.contains("warning: ") && r.stderr.contains("\"opt/far\" is owned by 70000:70000")
                && r.stderr.contains("outside the agent's subordinate ids"), "\(r.stderr)")

        // On the host: container id k (1...count) is subordinate id start + k - 1, as the
        // steps' mapping has it (0 = the agent, 1... = the range; IDMapPlan.nestedMaps).
        let (us, _) = try Self.range("/etc/subuid"), (gs, _) = try Self.range("/etc/subgid")
        let top = try await topSnapshot()
        #expect(top.hasSuffix("-u\(us)+65536g\(gs)+65536"), "\(top)")
        let file = Self.owner(top + "/opt/owned/file")
        #expect(file?.uid == us + 1500 - 1 && file?.gid == gs + 1600 - 1, "\(String(describing: file))")
        #expect(Self.owner(top + "/opt/private/deeper/x")?.uid == us + 1501 - 1)
        #expect(Self.owner(top + "/opt/owned/link")?.uid == us + 1500 - 1)
        #expect(Self.owner(top + "/opt/suid")?.mode == 0o4755)
        let far = Self.owner(top + "/opt/far")
        #expect(far?.uid == u.uid && far?.gid == u.gid, "\(String(describing: far))")
        // Only the owner that could not be applied is in the xattr (umoci's protobuf: 70000 = 0xf0 0xa2 0x04).
        #expect(try Self.xattr(top + "/opt/far", "user.rootlesscontainers") == "08f0a20410f0a204")
        #expect(try Self.xattr(top + "/opt/owned/file", "user.rootlesscontainers") == nil)
        // cap_net_raw+ep, re-set in the user namespace after the chown: the kernel stores it
        // as a namespaced (v3) capability whose root is the agent's uid, root inside.
        let cap = try Self.xattr(top + "/opt/cap", "security.capability")
        #expect(cap == "01000003" + Self.le32(1 << 13) + Self.le32(0) + Self.le32(0) + Self.le32(0) + Self.le32(u.uid), "\(cap ?? "none")")
        // The symlink's target outside the image is untouched.
        let s = Self.owner(sentinel)
        #expect(s?.uid == u.uid && s?.gid == u.gid)
        #expect(try String(contentsOfFile: sentinel, encoding: .utf8) == "keep\n")

        // Copy-up as container root over subordinate-owned lower files keeps their owners;
        // the snapshot itself never changes.
        let w = try await exec("subordinate", """
            echo more >> /opt/owned/file; stat -c '%u:%g %a' /opt/owned/file; cat /opt/owned/file
            touch /opt/private/deeper/new; stat -c '%u:%g' /opt/private/deeper/new /opt/private/deeper
            """, extra: ["--pull", "never", "--rw-rootfs"])
        #expect(w.status == 0, "\(w.stderr)")
        #expect(w.stdout == "1500:1600 640\nowned\nmore\n0:0\n1500:1600\n", "\(w.stdout)")
        #expect(try String(contentsOfFile: top + "/opt/owned/file", encoding: .utf8) == "owned\n")
    }

    @Test func bothModesOnOneStoreKeepSeparateSnapshotsAndPruneRemovesBoth() async throws {
        let single = try await exec("single", "stat -c '%u:%g %a' /opt/owned/file /opt/far /opt/suid")
        #expect(single.status == 0, "\(single.stderr)")
        #expect(single.stdout == "0:0 640\n0:0 644\n0:0 4755\n", "\(single.stdout)")
        #expect(!single.stderr.contains("outside the agent's subordinate ids"), "\(single.stderr)")
        let sub = try await exec("subordinate", "stat -c '%u:%g' /opt/owned/file", extra: ["--pull", "never"])
        #expect(sub.status == 0, "\(sub.stderr)")
        #expect(sub.stdout == "1500:1600\n", "\(sub.stdout)")
        // Two layers, each unpacked once per mode: CHAIN and CHAIN-u...g... side by side.
        let names = snapshotNames()
        #expect(names.count == 4, "\(names)")
        let plain = names.filter { !$0.contains("-") }
        #expect(plain.count == 2 && names.filter { $0.contains("-u") }.map { String($0.prefix(64)) }.sorted() == plain, "\(names)")
        // The single-mode snapshot: the agent's file, the owner in the xattr (1500:1600).
        let top = state + "/images/snapshots/sha256/" + (plain.first { FileManager.default.fileExists(atPath: state + "/images/snapshots/sha256/" + $0 + "/opt/owned") } ?? "none")
        #expect(Self.owner(top + "/opt/owned/file")?.uid == Harness.user.uid)
        #expect(try Self.xattr(top + "/opt/owned/file", "user.rootlesscontainers") == "08dc0b10c00c")
        // The store's size counts both (the subordinate one measured when it was unpacked).
        let df = try await Harness.run(["image", "df", "--state-dir", state])
        #expect(df.status == 0 && df.stdout.hasPrefix("store "), "\(df.stdout)\(df.stderr)")

        #expect(try await Harness.run(["image", "rm", "--state-dir", state, Self.image]).status == 0)
        let prune = try await Harness.run(["image", "prune", "--state-dir", state])
        #expect(prune.status == 0 && prune.stdout.contains("and 4 snapshots"), "\(prune.stdout)\(prune.stderr)")
        #expect(snapshotNames().isEmpty, "\(snapshotNames())")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: state + "/images/snapshot-sizes")) ?? []).isEmpty)
    }

    @Test func aJobOnTheImageRecordsSubordinateOwnersAndItsBuildStepsCopyUp() async throws {
        let f = try JobFixture("""
        {"version": 1, "id": "owners", "image": "\(Self.image)", "steps": [
          {"name": "change", "run": "stat -c %u:%g /opt/owned/file; echo more >> /opt/owned/file; mkdir /opt/private/made"},
          {"name": "see", "type": "test", "run": "cat /opt/owned/file; stat -c '%u:%g' /opt/owned/file /opt/private/made"}
        ]}
        """)
        let r = try await f.run(["--policy", Self.policy, "--state-dir", state])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try f.stepStates() == ["succeeded", "succeeded"])
        let image = try f.status()["image"] as? [String: Any]
        #expect(image?["owners"] as? String == "subordinate")
        #expect(try f.read("logs/01-change.log").contains(" out 1500:1600"))
        let see = try f.read("logs/02-see.log")
        for line in ["owned", "more", "1500:1600", "0:0"] { #expect(see.contains(" out " + line), "\(see)") }
        // The warning about the owner outside the range reaches the job's output too.
        #expect(r.stderr.contains("\"opt/far\" is owned by 70000:70000"), "\(r.stderr)")
        // The job's folder (its root layer holds the copied-up subordinate-owned file) is gone.
        let jobs = (try? FileManager.default.contentsOfDirectory(atPath: state + "/jobs")) ?? []
        #expect(jobs.filter { !$0.hasPrefix(".") }.isEmpty, "\(jobs)")
    }

    @Test func ownersThatCannotBeAppliedFailThePullNamingTheLayerAndLeaveNothing() async throws {
        // A newuidmap that fails (AGENT_NEWUIDMAP, as SandboxStartTests use): the owners process gets no map.
        let r = try await Harness.run(["image", "pull", "--state-dir", state, Self.image], environment: ["AGENT_NEWUIDMAP": "/bin/false"])
        #expect(r.status == 3, "\(r.stderr)")
        #expect(r.stderr.contains(Self.image + ": layer sha256:") && r.stderr.contains("applying the layer's owners in the subordinate id mapping")
                && r.stderr.contains("newuidmap") && r.stderr.contains("the layer was not unpacked"), "\(r.stderr)")
        // The base layer (root's files only, nothing to apply) was unpacked; the owners' layer left nothing.
        #expect(snapshotNames().count == 1, "\(snapshotNames())")
        #expect(try FileManager.default.contentsOfDirectory(atPath: state + "/images/tmp").isEmpty)
        let again = try await Harness.run(["image", "pull", "--state-dir", state, Self.image])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(snapshotNames().count == 2, "\(snapshotNames())")
    }

    @Test(arguments: [("hostile-symlink", "evil/tmp/agent-escape"), ("hostile-dotdot", "../../../tmp/agent-escape")])
    func aHostileLayerFailsInSingleModeToo(image: String, entry: String) async throws {
        // `agent image pull` (ImageTests) unpacks for the automatic mapping, subordinate here.
        let r = try await Harness.exec(["--state-dir", state, "--policy", Self.policy, "--id-map", "single",
                                        "--image", ImageTests.ref(image)], ["/bin/true"])
        #expect(r.status == 125, "\(r.stderr)")
        #expect(r.stderr.contains("layer sha256:") && r.stderr.contains("entry \"\(entry)\""), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/agent-escape"))
        #expect(snapshotNames().isEmpty)
    }
}
