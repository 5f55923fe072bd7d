import Foundation
import Testing

/// Space bounds and terminal safety with the real binary: a test step cannot fill RAM
/// through `/dev/shm`, and `--progress plain` never passes a step's escape sequences on.
@Suite(.serialized) struct SpaceJobTests {
    @Test func writingPastTheDefaultSizeIntoDevShmGetsENOSPC() async throws {
        // 300 MB against the 256 MiB default of policy tmpfs.defaultSizeBytes.
        let f = try JobFixture("""
        {"version": 1, "id": "shm", "steps": [
          {"name": "fill", "type": "test", "run": ["/bin/sh", "-c",
            "if head -c 314572800 /dev/zero > /dev/shm/big; then printf 'WROTE%s\\n' -ALL; else printf 'SHM%s\\n' -FULL; fi; rm -f /dev/shm/big; df -k /dev/shm /tmp | tail -n +2"]}
        ]}
        """)
        let r = try await f.run()
        let out = r.stdout + r.stderr
        #expect(out.contains("SHM-FULL"), "\(out)")
        #expect(!out.contains("WROTE-ALL"))
        #expect(out.contains("No space left on device"), "\(out)")
    }

    @Test func plainProgressShowsOSCSequencesEscaped() async throws {
        let f = try JobFixture(#"""
        {"version": 1, "id": "osc", "steps": [
          {"name": "evil", "run": ["/bin/sh", "-c", "printf '\\033]52;c;aGk=\\007\\033]0;title\\007after\\n'"]}
        ]}
        """#)
        let r = try await f.run()
        #expect(r.status == 0, "\(r.stderr)")
        let out = r.stdout + r.stderr
        #expect(out.contains(#"\x1b]52;c;aGk=\x07\x1b]0;title\x07after"#), "\(out)")
        #expect(!out.unicodeScalars.contains("\u{1B}"))
        #expect(!out.unicodeScalars.contains("\u{07}"))
    }
}
