import Foundation
import Testing

/// A job naming a local image (`oci:DIR`, `oci-archive:FILE`, `docker-archive:FILE`): the
/// path is a request, admitted beneath the job's folder or a root of `images.localRoots`,
/// and read through the admitted descriptor.
@Suite(.serialized) struct ImageLocalSourceTests {
    func shell(_ script: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-ec", script]
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(script)")
    }

    func job(_ image: String) -> String {
        """
        {"version": 1, "id": "local", "image": "\(image)", "steps": [
          {"name": "look", "run": "cat /etc/added; test ! -e /etc/lower-file && echo lower-gone"}
        ]}
        """
    }

    @Test(arguments: ["oci:layout:1", "oci-archive:image.tar", "docker-archive:saved.tar"])
    func aJobRunsOnALocalImageBesideItsFile(source: String) async throws {
        let f = try JobFixture(job(source))
        let u = Harness.user
        try shell("""
        cd \(f.dir)
        skopeo copy -q oci:\(ImageTests.layouts)/layered:1 oci:layout:1
        skopeo copy -q oci:\(ImageTests.layouts)/layered:1 oci-archive:image.tar
        skopeo copy -q oci:\(ImageTests.layouts)/layered:1 docker-archive:saved.tar:localhost/layered:1
        chown -R \(u.uid):\(u.gid) layout image.tar saved.tar
        """)
        let r = try await f.run()
        #expect(r.status == 0, "\(r.stderr)")
        let log = try f.read("logs/01-look.log")
        #expect(log.contains(" out from the upper layer") && log.contains(" out lower-gone"), "\(log)")
    }

    @Test func aLocalImageElsewhereNeedsTheOperatorsRoot() async throws {
        let elsewhere = try Harness.scratch("local-root")
        try shell("skopeo copy -q oci:\(ImageTests.layouts)/layered:1 oci-archive:\(elsewhere)/image.tar && chmod 644 \(elsewhere)/image.tar")
        let f = try JobFixture(job("oci-archive:\(elsewhere)/image.tar"))
        let refused = try await f.run()
        #expect(refused.status == 2, "\(refused.stderr)")
        #expect(refused.stderr.contains("job.json: image:") && refused.stderr.contains("images.localRoots"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: f.results))
        let policy = f.dir + "/policy.json"
        try Harness.write(#"{"images": {"localRoots": ["\#(elsewhere)"]}}"#, to: policy)
        let r = try await f.run(["--policy", policy])
        #expect(r.status == 0, "\(r.stderr)")
        // The kind must match the transport.
        let wrong = try JobFixture(job("oci:\(elsewhere)/image.tar"))
        let kind = try await wrong.run(["--policy", policy])
        #expect(kind.status == 2 && kind.stderr.contains("is not a folder"), "\(kind.stderr)")
    }

    @Test func aSymlinkInsideALayoutCannotLeadTheReadOut() async throws {
        let f = try JobFixture(job("oci:layout:1"))
        let u = Harness.user
        // Every blob of the layout becomes a symlink to its real file outside the job's folder:
        // digests would match, but the agent must not follow a link out of the layout.
        let outside = try Harness.scratch("local-outside")
        try shell("""
        cd \(f.dir)
        skopeo copy -q oci:\(ImageTests.layouts)/layered:1 oci:layout:1
        mv layout/blobs \(outside)/blobs
        mkdir -p layout/blobs/sha256
        for b in \(outside)/blobs/sha256/*; do ln -s "$b" layout/blobs/sha256/$(basename "$b"); done
        chown -R \(u.uid):\(u.gid) layout \(outside)
        """)
        let r = try await f.run()
        #expect(r.status == 3, "\(r.stderr)")
        #expect(r.stderr.contains("blobs/sha256/"), "\(r.stderr)")
    }
}

extension ImageLocalSourceTests {
    @Test func execRunsOnAnOCIArchive() async throws {
        let dir = try Harness.scratch("exec-archive")
        try shell("skopeo copy -q oci:\(ImageTests.layouts)/layered:1 oci-archive:\(dir)/image.tar && chmod 644 \(dir)/image.tar")
        let r = try await Harness.exec(["--state-dir", dir + "/state", "--image", "oci-archive:\(dir)/image.tar"], ["/bin/cat", "/etc/added"])
        #expect(r.status == 0 && r.stdout.contains("from the upper layer"), "\(r.stderr)")
    }
}
