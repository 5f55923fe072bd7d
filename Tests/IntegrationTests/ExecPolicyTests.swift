import Foundation
import Testing

/// `agent exec` obeys the agent policy (README "Seccomp profiles, capabilities and the agent
/// policy"): the flags may only narrow it, and a refusal exits 125 before anything runs.
/// Policies come from `ci/test-policies` (see `Harness.testPolicy`).
@Suite struct ExecPolicyTests {
    /// Runs `sh -c 'touch /tmp/ran; cat /proc/self/status'` in busybox with a writable
    /// scratch folder at /tmp, and says whether the command ran (the marker exists).
    static func attempt(_ options: [String], environment: [String: String] = [:]) async throws -> (result: Harness.Result, ran: Bool) {
        let dir = try Harness.scratch("policy")
        let r = try await Harness.exec(["--rootfs", Harness.busyboxRootfs, "--bind", "\(dir):/tmp:rw"] + options,
                                       ["sh", "-c", "touch /tmp/ran; cat /proc/self/status"], environment: environment)
        return (r, FileManager.default.fileExists(atPath: dir + "/ran"))
    }

    /// A line of /proc/self/status (`CapEff`, `Seccomp`, ...) from the command's output.
    static func field(_ name: String, _ r: Harness.Result) -> String? {
        r.stdout.split(separator: "\n").first { $0.hasPrefix(name + ":") }
            .map { $0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces) }
    }

    static func expectRefused(_ a: (result: Harness.Result, ran: Bool), _ message: String) {
        #expect(a.result.status == 125, "\(a.result.status) \(a.result.stderr)")
        #expect(a.result.stderr == "agent: \(message)\n", "\(a.result.stderr)")
        #expect(a.result.stdout.isEmpty && !a.ran, "the command ran: \(a.result.stdout)")
    }

    @Test func capAddOutsideThePolicyIsRefusedBeforeAnythingRuns() async throws {
        let policy = Harness.testPolicy("chown-only")
        Self.expectRefused(try await Self.attempt(["--policy", policy, "--cap-add", "SYS_ADMIN"]),
                           "--cap-add SYS_ADMIN: the agent policy does not allow CAP_SYS_ADMIN (policy \(policy): capabilities)")
        // Docker's defaults are no floor: the built-in policy lacks SYS_ADMIN too (review 2.8).
        Self.expectRefused(try await Self.attempt(["--cap-add", "SYS_ADMIN", "--seccomp", "unconfined"]),
                           "--seccomp unconfined: the agent policy's seccompProfile is \"default\"; agent exec may not remove it (built-in policy: seccompProfile)")
        Self.expectRefused(try await Self.attempt(["--cap-add", "sys_admin"]),
                           "--cap-add sys_admin: the agent policy does not allow CAP_SYS_ADMIN (built-in policy: capabilities)")
        // The same through $AGENT_POLICY.
        Self.expectRefused(try await Self.attempt(["--cap-add", "KILL"], environment: ["AGENT_POLICY": policy]),
                           "--cap-add KILL: the agent policy does not allow CAP_KILL (policy \(policy): capabilities)")
    }

    @Test func capabilitiesStartFromThePolicyAndNarrow() async throws {
        let chown = ["--policy", Harness.testPolicy("chown-only")]
        let only = try await Self.attempt(chown + ["--cap-drop", "ALL", "--cap-add", "CHOWN"])
        #expect(only.result.status == 0 && only.ran, "\(only.result.stderr)")
        #expect(Self.field("CapEff", only.result) == "0000000000000001")
        #expect(Self.field("CapBnd", only.result) == "0000000000000001")
        // No flags: the policy's set, not Docker's 14.
        let plain = try await Self.attempt(chown)
        #expect(Self.field("CapEff", plain.result) == "0000000000000001", "\(plain.result.stderr)")
        // A policy that grants SYS_ADMIN lets --cap-add ask for it (bit 21).
        let admin = try await Self.attempt(["--policy", Harness.testPolicy("sys-admin"), "--cap-drop", "ALL", "--cap-add", "SYS_ADMIN"])
        #expect(admin.result.status == 0, "\(admin.result.stderr)")
        #expect(Self.field("CapEff", admin.result) == "0000000000200000")
        // An unknown name is a usage error naming the flag.
        let bad = try await Self.attempt(["--cap-add", "NOPE"])
        #expect(bad.result.status == 64 && bad.result.stderr.contains("--cap-add NOPE: unknown capability") && !bad.ran,
                "\(bad.result.stderr)")
    }

    @Test func hostNetworkNeedsAllowHostNetwork() async throws {
        Self.expectRefused(try await Self.attempt(["--network", "host"]),
                           "--network host: the agent policy does not allow the host network (built-in policy: allowHostNetwork)")
        let hostNS = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net")
        let r = try await Harness.exec(["--rootfs", Harness.busyboxRootfs, "--network", "host",
                                        "--policy", Harness.testPolicy("host-network")], ["readlink", "/proc/self/ns/net"])
        #expect(r.status == 0 && r.stdout == hostNS + "\n", "\(r.stdout) \(r.stderr) (host: \(hostNS))")
        let none = try await Harness.exec(["--rootfs", Harness.busyboxRootfs, "--policy", Harness.testPolicy("host-network")],
                                          ["readlink", "/proc/self/ns/net"])
        #expect(none.status == 0 && none.stdout != hostNS + "\n", "\(none.stdout) \(none.stderr)")
    }

    @Test func unconfinedNeedsAnUnconfinedPolicy() async throws {
        Self.expectRefused(try await Self.attempt(["--seccomp", "unconfined"]),
                           "--seccomp unconfined: the agent policy's seccompProfile is \"default\"; agent exec may not remove it (built-in policy: seccompProfile)")
        let policy = Harness.testPolicy("docker-seccomp")
        let docker = try await Self.attempt(["--policy", policy, "--seccomp", "unconfined"])
        #expect(docker.result.status == 125 && docker.result.stderr.contains("(policy \(policy): seccompProfile)") && !docker.ran,
                "\(docker.result.stderr)")
        let open = try await Self.attempt(["--policy", Harness.testPolicy("unconfined"), "--seccomp", "unconfined"])
        #expect(open.result.status == 0 && Self.field("Seccomp", open.result) == "0", "\(open.result.stderr)")
        // Default exec applies the policy's filter: the built-in one, and none under unconfined.json.
        let builtIn = try await Self.attempt([])
        #expect(builtIn.result.status == 0 && Self.field("Seccomp", builtIn.result) == "2", "\(builtIn.result.stderr)")
        let none = try await Self.attempt(["--policy", Harness.testPolicy("unconfined")])
        #expect(Self.field("Seccomp", none.result) == "0", "\(none.result.stderr)")
    }

    @Test func aProfileFileMayNotReplaceThePolicysProfile() async throws {
        let profile = Harness.dockerSeccompProfile
        Self.expectRefused(try await Self.attempt(["--seccomp", profile]),
                           "--seccomp \(profile): the agent policy's seccompProfile is \"default\"; agent exec may not replace it (built-in policy: seccompProfile)")
        // The policy's own file (by another spelling) is no replacement; a filter under an
        // unconfined policy only narrows it.
        let docker = try await Self.attempt(["--policy", Harness.testPolicy("docker-seccomp"),
                                             "--seccomp", Harness.fixtures + "/test-policies/../seccomp/docker-default.json"])
        #expect(docker.result.status == 0 && Self.field("Seccomp", docker.result) == "2", "\(docker.result.stderr)")
        let narrowed = try await Self.attempt(["--policy", Harness.testPolicy("unconfined"), "--seccomp", profile])
        #expect(narrowed.result.status == 0 && Self.field("Seccomp", narrowed.result) == "2", "\(narrowed.result.stderr)")
    }

    @Test func aBrokenPolicyProfileFailsNamingThePolicy() async throws {
        let broken = Harness.testPolicy("broken-seccomp")
        let a = try await Self.attempt([], environment: ["AGENT_POLICY": broken])
        #expect(a.result.status == 125 && !a.ran && a.result.stdout.isEmpty, "\(a.result.stderr)")
        let profile = Harness.fixtures + "/test-policies/broken-profile.json"
        #expect(a.result.stderr.hasPrefix("agent: policy \(broken): seccompProfile: seccomp profile \(profile): "), "\(a.result.stderr)")
        // --policy beats $AGENT_POLICY: the broken file is not even read.
        let flag = try await Self.attempt(["--policy", Harness.testPolicy("unconfined")], environment: ["AGENT_POLICY": broken])
        #expect(flag.result.status == 0 && flag.ran, "\(flag.result.stderr)")
    }
}
