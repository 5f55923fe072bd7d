import Testing
@testable import SandboxPolicy

@Test func dockerDefaultHas14Capabilities() {
    #expect(CapabilitySet.dockerDefault.mask.nonzeroBitCount == 14)
}
