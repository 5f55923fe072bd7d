import Foundation
import Testing

/// The harness itself: the agent under test is never root.
@Test func agentRunsAsUnprivilegedUser() async throws {
    #expect(Harness.user.uid != 0, "the agent under test must run as an unprivileged user")
    let r = try await Harness.run(["--version"])
    #expect(r.status == 0, "\(r.stderr)")
}
