import Foundation
import Testing
@testable import SandboxPolicy

/// Reading Docker's JSON format: every key, and errors that name the JSON path.
@Suite struct SeccompProfileParsingTests {
    private func error(_ json: String) -> String? {
        do {
            _ = try SeccompProfile(json: json)
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func readsEveryKeyOfTheFormat() throws {
        let profile = try SeccompProfile(json: """
        {
          "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
          "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                      {"architecture": "SCMP_ARCH_RISCV64", "subArchitectures": null}],
          "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "comment": "ignored"},
            {"name": "clone", "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
             "includes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["amd64"], "minKernel": "4.8"},
             "excludes": {"caps": ["CAP_BPF"], "arches": ["s390x"]}},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["ptrace"], "action": "SCMP_ACT_TRACE", "errnoRet": 7}
          ]
        }
        """)
        #expect(profile.defaultAction == .errno)
        #expect(profile.defaultErrnoRet == 1)
        #expect(profile.archMap == [.init(architecture: "SCMP_ARCH_X86_64", subArchitectures: ["SCMP_ARCH_X86"]),
                                    .init(architecture: "SCMP_ARCH_RISCV64", subArchitectures: [])])
        #expect(profile.syscalls.count == 4)
        let clone = profile.syscalls[1]
        #expect(clone.names == ["clone"])
        #expect(clone.args == [.init(index: 0, value: 0x7E02_0000, valueTwo: 0, op: .maskedEqual)])
        #expect(clone.includes == .init(caps: ["CAP_SYS_ADMIN"], arches: ["amd64"], minKernel: .init(major: 4, minor: 8)))
        #expect(clone.excludes == .init(caps: ["CAP_BPF"], arches: ["s390x"]))
        #expect(profile.syscalls[2].errnoRet == 38)
        #expect(profile.syscalls[3].action == .trace)
    }

    @Test func readsEveryActionAndOperator() throws {
        for action in SeccompProfile.Action.allCases {
            let profile = try SeccompProfile(json: #"{"defaultAction": "\#(action.rawValue)"}"#)
            #expect(profile.defaultAction == action)
        }
        for op in SeccompProfile.Operator.allCases {
            let profile = try SeccompProfile(json: """
            {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 2, "value": 5, "op": "\(op.rawValue)"}]}]}
            """)
            #expect(profile.syscalls[0].args[0].op == op)
        }
    }

    @Test func unknownActionNamesItsPath() throws {
        let message = try #require(error(#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALOW"}]}"#))
        #expect(message.contains("syscalls[0].action"))
        #expect(message.contains("SCMP_ACT_ALOW"))
    }

    @Test func unknownOperatorNamesItsPath() throws {
        let message = try #require(error("""
        {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"},
         {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQUALS"}]}]}
        """))
        #expect(message.contains("syscalls[1].args[0].op"))
        #expect(message.contains("SCMP_CMP_EQUALS"))
    }

    @Test func unknownKeysNameTheirPath() throws {
        #expect(error(#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErnoRet": 1}"#)?.contains("defaultErnoRet: unknown key") == true)
        #expect(error(#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"nmes": ["read"], "action": "SCMP_ACT_ALLOW"}]}"#)?
            .contains("syscalls[0].nmes") == true)
        #expect(error(#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"capabilities": []}}]}"#)?
            .contains("syscalls[0].includes.capabilities") == true)
        #expect(error(#"{"defaultAction": "SCMP_ACT_ERRNO", "archMap": [{"arch": "SCMP_ARCH_X86_64"}]}"#)?
            .contains("archMap[0].arch") == true)
    }

    @Test func wrongTypesNameTheirPath() throws {
        #expect(error(#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": "1"}"#)?
            .contains("defaultErrnoRet: expected a non-negative integer, found a string") == true)
        #expect(error(#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": "read", "action": "SCMP_ACT_ALLOW"}]}"#)?
            .contains("syscalls[0].names: expected an array") == true)
        #expect(error(#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read", 3], "action": "SCMP_ACT_ALLOW"}]}"#)?
            .contains("syscalls[0].names[1]") == true)
        #expect(error(#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": true, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#)?
            .contains("syscalls[0].args[0].index: expected a non-negative integer, found a boolean") == true)
        #expect(error(#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#)?
            .contains("syscalls[0].args[0].index") == true)
        #expect(error(#"["not", "an", "object"]"#)?.contains("expected an object") == true)
        #expect(error("{not json")?.contains("not valid JSON") == true)
    }

    @Test func missingRequiredFieldsAreNamed() throws {
        #expect(error(#"{"syscalls": []}"#)?.contains("defaultAction: missing") == true)
        #expect(error(#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"]}]}"#)?.contains("syscalls[0].action: missing") == true)
        #expect(error(#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]}"#)?.contains("syscalls[0].names") == true)
    }

    @Test func notifyIsRefused() throws {
        let message = try #require(error(#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_NOTIFY"}]}"#))
        #expect(message.contains("syscalls[0].action"))
        #expect(message.contains("SCMP_ACT_NOTIFY is not supported"))
        #expect(error(#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#)?.contains("defaultAction") == true)
        #expect(error(#"{"defaultAction": "SCMP_ACT_ERRNO", "listenerPath": "/run/x.sock"}"#)?.contains("listenerPath") == true)
    }

    @Test func inconsistentRulesAreErrors() throws {
        #expect(error(#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"name": "read", "names": ["write"], "action": "SCMP_ACT_ALLOW"}]}"#)?
            .contains("syscalls[0].name: use either name or names") == true)
        #expect(error(#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}]}"#)?
            .contains("syscalls[0].errnoRet") == true)
        #expect(error(#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"], "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}"#)?
            .contains("either architectures or archMap") == true)
        #expect(error(#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["x86_64"]}"#)?.contains("architectures[0]") == true)
        #expect(error(#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4"}}]}"#)?
            .contains("syscalls[0].includes.minKernel") == true)
        #expect(error(#"{"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_LOG"]}"#)?.contains("flags") == true)
    }

    @Test func profileFilesAreCheckedWhenRead() throws {
        let dir = try TestFiles.scratch("profile")
        let good = dir + "/good.json", bad = dir + "/bad.json"
        try #"{"defaultAction": "SCMP_ACT_ALLOW"}"#.write(toFile: good, atomically: true, encoding: .utf8)
        try #"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALOW"}]}"#
            .write(toFile: bad, atomically: true, encoding: .utf8)
        #expect(try SeccompPolicy.file(good) == .profile(json: #"{"defaultAction": "SCMP_ACT_ALLOW"}"#))
        #expect(throws: SeccompError(message: "seccomp profile \(bad): syscalls[0].action: unknown action SCMP_ACT_ALOW (expected one of: \(SeccompProfile.Action.allCases.map(\.rawValue).joined(separator: ", ")))")) {
            try SeccompPolicy.file(bad)
        }
        #expect(throws: SeccompError(message: "seccomp profile \(dir)/missing.json: cannot read the file (No such file or directory)")) {
            try SeccompPolicy.file(dir + "/missing.json")
        }
        #expect(throws: SeccompError(message: "seccomp profile \(dir): cannot read the file (not a regular file)")) {
            try SeccompPolicy.file(dir)
        }
    }

    @Test func kernelVersionsParseReleases() {
        #expect(SeccompProfile.KernelVersion("4.8") == .init(major: 4, minor: 8))
        #expect(SeccompProfile.KernelVersion("6.1.0-18-amd64") == .init(major: 6, minor: 1))
        #expect(SeccompProfile.KernelVersion("6") == nil)
        #expect(SeccompProfile.KernelVersion("six.1") == nil)
        #expect(SeccompProfile.KernelVersion("5.10") ?? .init(major: 0, minor: 0) > .init(major: 5, minor: 9))
    }

    @Test func jsonTextRoundTrips() throws {
        let profile = try SeccompProfile(json: DefaultProfile.text)
        let again = try SeccompProfile(json: profile.jsonText)
        #expect(again == profile)
        #expect(again.jsonText == profile.jsonText)
        let docker = try SeccompProfile(json: try TestFiles.dockerProfile())
        #expect(try SeccompProfile(json: docker.jsonText) == docker)
    }
}
