import Foundation
import Testing
@testable import SandboxPolicy

/// containers-common's format (podman, buildah, CRI-O): Docker's keys plus errno *names*,
/// `defaultErrno` for the default action and `errno` per rule.
@Suite struct ContainersCommonProfileTests {
    static let installedProfile = "/usr/share/containers/seccomp.json"

    @Test func errnoNamesBecomeReturnCodes() throws {
        let profile = try SeccompProfile(json: """
        {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrno": "ENOSYS", "syscalls": [
          {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errno": "EXDEV"},
          {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errno": "EPERM", "errnoRet": 13},
          {"names": ["read"], "action": "SCMP_ACT_ALLOW", "comment": "", "includes": {}, "excludes": {}}
        ]}
        """)
        #expect(profile.defaultErrnoRet == 38)
        #expect(profile.syscalls[0].errnoRet == UInt32(EXDEV))
        // The number wins when both are given.
        #expect(profile.syscalls[1].errnoRet == 13)
        #expect(profile.syscalls[2].errnoRet == nil)
    }

    @Test func numberWinsForTheDefaultToo() throws {
        let profile = try SeccompProfile(json: #"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "defaultErrno": "ENOSYS"}"#)
        #expect(profile.defaultErrnoRet == 1)
    }

    @Test func unknownErrnoNameNamesItsPath() {
        #expect(throws: SeccompError.self) {
            try SeccompProfile(json: #"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrno": "ENOPE"}"#)
        }
        do {
            _ = try SeccompProfile(json: """
            {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errno": "EXDEVV"}]}
            """)
            Issue.record("accepted an unknown errno name")
        } catch {
            #expect("\(error)".contains("syscalls[0].errno") && "\(error)".contains("EXDEVV"), "\(error)")
        }
    }

    @Test func errnoOnlyWithActionsThatTakeOne() {
        do {
            _ = try SeccompProfile(json: """
            {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "errno": "EPERM"}]}
            """)
            Issue.record("accepted errno on SCMP_ACT_ALLOW")
        } catch {
            #expect("\(error)".contains("syscalls[0].errno"), "\(error)")
        }
    }

    @Test func otherUnknownKeysStayErrors() {
        do {
            _ = try SeccompProfile(json: #"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoName": "ENOSYS"}"#)
            Issue.record("accepted an unknown key")
        } catch {
            #expect("\(error)".contains("defaultErrnoName"), "\(error)")
        }
    }

    @Test func sameProgramAsTheNumericForm() throws {
        let named = try SeccompPolicy.profile(json: """
        {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrno": "ENOSYS", "syscalls": [
          {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
          {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errno": "EXDEV"}]}
        """).compile(capabilities: .empty)
        let numeric = try SeccompPolicy.profile(json: """
        {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "syscalls": [
          {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
          {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": \(EXDEV)}]}
        """).compile(capabilities: .empty)
        #expect(named != nil && named == numeric)
    }

    /// Debian's golang-github-containers-common package (ci/test.sh installs it).
    // ci/test.sh installs golang-github-containers-common: a missing profile fails here.
    @Test
    func installedProfileLoadsAndCompilesUnchanged() throws {
        let text = try String(contentsOfFile: Self.installedProfile, encoding: .utf8)
        let profile = try SeccompProfile(json: text)
        #expect(profile.defaultAction == .errno)
        #expect(profile.defaultErrnoRet == 38)
        #expect(profile.syscalls.contains { $0.names.contains("setns") && $0.errnoRet == UInt32(EPERM) })
        let program = try #require(try SeccompPolicy.profile(json: text).program(capabilities: .dockerDefault, cache: SeccompCache()))
        #expect(program.instructionCount > 100)
    }
}
