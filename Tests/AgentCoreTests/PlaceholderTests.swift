import Testing
@testable import AgentCore

@Test func versionIsSet() {
    #expect(!AgentVersion.current.isEmpty)
}
