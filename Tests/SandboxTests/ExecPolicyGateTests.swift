import Foundation
import Testing
@testable import Sandbox
import SandboxPolicy

/// `agent exec`'s security flags under the agent policy: they may only narrow it. The
/// refusals are checked by value (flag, value, key), since the CLI prints them as they are.
@Suite struct ExecPolicyGateTests {
    static func policy(_ edit: (inout SandboxLimits) -> Void) -> SandboxLimits {
        var p = SandboxLimits()
        edit(&p)
        return p
    }

    static let chownOnly = ExecPolicyGate(
        policy: policy { $0.capabilities = CapabilitySet(mask: 1) }, source: "/etc/chown-only.json")
    static let builtIn = ExecPolicyGate(policy: SandboxLimits(), source: "built-in")

    @Test func capAddOutsideThePolicyIsRefusedNamingFlagValueAndKey() throws {
        #expect(throws: ExecPolicyGate.Refusal(flag: "--cap-add", value: "SYS_ADMIN",
                                               problem: "the agent policy does not allow CAP_SYS_ADMIN",
                                               source: "/etc/chown-only.json", key: "capabilities")) {
            try Self.chownOnly.capabilities(drop: [], add: ["SYS_ADMIN"])
        }
        do {
            _ = try Self.chownOnly.capabilities(drop: ["ALL"], add: ["CHOWN", "cap_kill"])
            Issue.record("CAP_KILL is outside the policy")
        } catch {
            #expect("\(error)" == "--cap-add cap_kill: the agent policy does not allow CAP_KILL (policy /etc/chown-only.json: capabilities)")
        }
        // Docker's defaults are not a floor: the built-in policy does not hold SYS_ADMIN either.
        #expect(throws: ExecPolicyGate.Refusal.self) { try Self.builtIn.capabilities(drop: [], add: ["SYS_ADMIN"]) }
    }

    @Test func capabilitiesStartFromThePolicyAndOnlyNarrow() throws {
        #expect(try Self.chownOnly.capabilities(drop: [], add: []).names == ["CAP_CHOWN"])
        #expect(try Self.chownOnly.capabilities(drop: ["ALL"], add: ["CHOWN"]).names == ["CAP_CHOWN"])
        #expect(try Self.chownOnly.capabilities(drop: ["ALL"], add: []) == .empty)
        // ALL in --cap-add means all the policy allows, never more.
        #expect(try Self.chownOnly.capabilities(drop: ["ALL"], add: ["ALL"]).names == ["CAP_CHOWN"])
        #expect(try Self.builtIn.capabilities(drop: ["NET_RAW"], add: []) == CapabilitySet.dockerDefault.subtracting(try CapabilitySet(names: ["NET_RAW"])))
        let admin = ExecPolicyGate(policy: Self.policy { $0.capabilities = .dockerDefault.union(try! CapabilitySet(names: ["SYS_ADMIN"])) }, source: "p")
        #expect(try admin.capabilities(drop: [], add: []) == admin.policy.capabilities)
        #expect(try admin.capabilities(drop: ["ALL"], add: ["SYS_ADMIN"]).names == ["CAP_SYS_ADMIN"])
    }

    @Test func unknownCapabilityNamesAreUsageErrors() {
        #expect(throws: ExecParsing.InvalidValue("--cap-add NOPE: unknown capability")) {
            try Self.builtIn.capabilities(drop: [], add: ["NOPE"])
        }
        #expect(throws: ExecParsing.InvalidValue("--cap-drop 12: unknown capability")) {
            try Self.builtIn.capabilities(drop: ["12"], add: [])
        }
    }

    @Test func hostNetworkNeedsAllowHostNetwork() throws {
        #expect(try Self.builtIn.network("none") == ContainerConfiguration.Network.none)
        do {
            _ = try Self.builtIn.network("host")
            Issue.record("the built-in policy does not allow the host network")
        } catch {
            #expect("\(error)" == "--network host: the agent policy does not allow the host network (built-in policy: allowHostNetwork)")
        }
        let open = ExecPolicyGate(policy: Self.policy { $0.allowHostNetwork = true }, source: "p")
        #expect(try open.network("host") == .host)
        #expect(throws: ExecParsing.InvalidValue.self) { try open.network("bridge") }
    }

    @Test func defaultSeccompIsThePolicysProfile() throws {
        #expect(try Self.builtIn.seccomp("default") == .projectDefault)
        let netlink = ExecPolicyGate(policy: Self.policy { $0.allowNetlink = true }, source: "p")
        #expect(try netlink.seccomp("default") == .projectDefault(allowNetlink: true, allowRawSockets: false))
        let none = ExecPolicyGate(policy: Self.policy { $0.seccompProfile = .unconfined }, source: "p")
        #expect(try none.seccomp("default") == .unconfined)
        let broken = ExecPolicyGate(policy: Self.policy { $0.seccompProfile = .file("/nonexistent/profile.json") }, source: "p")
        #expect(throws: PolicyError(file: "p", key: "seccompProfile", problem:
            "seccomp profile /nonexistent/profile.json: cannot read the file (No such file or directory)")) {
            try broken.seccomp("default")
        }
    }

    @Test func unconfinedOnlyUnderAnUnconfinedPolicy() throws {
        do {
            _ = try Self.builtIn.seccomp("unconfined")
            Issue.record("the built-in policy has a seccomp profile")
        } catch {
            #expect("\(error)" == #"--seccomp unconfined: the agent policy's seccompProfile is "default"; agent exec may not remove it (built-in policy: seccompProfile)"#)
        }
        let none = ExecPolicyGate(policy: Self.policy { $0.seccompProfile = .unconfined }, source: "p")
        #expect(try none.seccomp("unconfined") == .unconfined)
    }

    @Test func aProfileFileOnlyReplacesNoFilterOrTheSameFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gate-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
        let profile = #"{"defaultAction": "SCMP_ACT_ALLOW"}"#
        try profile.write(toFile: dir + "/p.json", atomically: true, encoding: .utf8)
        try profile.write(toFile: dir + "/other.json", atomically: true, encoding: .utf8)

        do {
            _ = try Self.builtIn.seccomp(dir + "/p.json")
            Issue.record("the built-in policy's profile may not be replaced")
        } catch {
            #expect("\(error)" == #"--seccomp \#(dir)/p.json: the agent policy's seccompProfile is "default"; agent exec may not replace it (built-in policy: seccompProfile)"#)
        }
        let none = ExecPolicyGate(policy: Self.policy { $0.seccompProfile = .unconfined }, source: "p")
        #expect(try none.seccomp(dir + "/p.json") == .profile(json: profile))
        #expect(throws: ExecParsing.InvalidValue.self) { try none.seccomp(dir + "/missing.json") }

        let same = ExecPolicyGate(policy: Self.policy { $0.seccompProfile = .file(dir + "/p.json") }, source: "p")
        // The same file by another spelling is the policy's own profile.
        #expect(try same.seccomp(dir + "/sub/../p.json") == .profile(json: profile))
        // Another file with the same text is still another profile.
        #expect(throws: ExecPolicyGate.Refusal.self) { try same.seccomp(dir + "/other.json") }
    }
}
