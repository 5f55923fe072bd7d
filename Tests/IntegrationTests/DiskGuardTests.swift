import Foundation
import Glibc
import Testing

/// `minFreeDiskBytes`: a step or a build's RUN that writes the state folder's disk below the
/// policy's reserve is killed and fails naming the key; the agent and its results survive.
// Serialized: both tests fill the same disk up to a reserve each computed from what is free,
// so run together one's filler ate the other's headroom.
@Suite(.serialized) struct DiskGuardTests {
    /// A policy whose reserve is `headroom` bytes below what is free now on `dir`'s disk.
    static func policy(in dir: String, headroom: UInt64, extra: String = "") throws -> String {
        var s = statvfs()
        #expect(statvfs(dir, &s) == 0)
        let free = UInt64(s.f_bavail) * UInt64(s.f_frsize)
        let path = dir + "/disk-policy.json"
        try Harness.write(#"{"minFreeDiskBytes": \#(free - headroom)\#(extra)}"#, to: path)
        return path
    }

    /// Writes up to 3 GB in 50 MB files: far past the 150 MB of headroom, so only the guard
    /// can end it early.
    static let filler = "i=0; while [ $i -lt 60 ]; do dd if=/dev/zero of=$0/fill$i bs=1M count=50 2>/dev/null || exit 9; i=$((i+1)); done; echo wrote-everything"

    @Test func aStepThatFillsTheDiskIsKilledAndFailsNamingTheKey() async throws {
        let f = try JobFixture(#"""
        {"version": 1, "steps": [
          {"name": "fill", "run": ["/bin/sh", "-c", "\#(Self.filler)", "/workspace"]},
          {"name": "after", "run": "echo after-ran"}
        ]}
        """#)
        try BuildTests.sh("chown -R \(Harness.user.uid):\(Harness.user.gid) \(f.dir)")
        let policy = try Self.policy(in: f.dir, headroom: 150 << 20)
        let r = try await f.run(["--policy", policy])
        #expect(r.status == 1, "\(r.stderr)")
        let steps = try f.steps()
        #expect(steps.first?["state"] as? String == "failed")
        let reason = (steps.first?["reason"] as? String) ?? ""
        #expect(reason.contains("minFreeDiskBytes"), "\(steps)")
        #expect(!(try f.read(steps.first?["log"] as? String ?? "missing")).contains("wrote-everything"))
        // The job's layers are gone with it: no filler file is left anywhere under the job's
        // folder (its state included). Free space is checked only loosely: other suites
        // write to the same disk meanwhile.
        let left = try BuildTests.output("find \(f.dir) -name 'fill*' | head -n 3")
        #expect(left.isEmpty, "\(left)")
        var s = statvfs()
        #expect(statvfs(f.dir, &s) == 0)
        let reserve = UInt64((try String(contentsOfFile: policy, encoding: .utf8)).filter(\.isNumber))!
        #expect(UInt64(s.f_bavail) * UInt64(s.f_frsize) + (100 << 20) > reserve)
    }

    @Test func aRunThatFillsTheDiskFailsTheBuildNamingTheLine() async throws {
        let f = try BuildTests.Fixture("""
        FROM \(BuildTests.base)
        RUN sh -c '\(Self.filler)' /
        """)
        let policy = try Self.policy(in: f.dir, headroom: 150 << 20, extra: #", "images": {"allowedRegistries": ["127.0.0.1"]}"#)
        let r = try await Harness.run(["build", "--state-dir", f.state, "--policy", policy, "--progress", "plain", f.context])
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.stderr.contains("Dockerfile:2") && r.stderr.contains("minFreeDiskBytes"), "\(r.stderr)")
        #expect(!BuildTests.printed(r.stderr, "wrote-everything"))
    }
}
