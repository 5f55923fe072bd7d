import Foundation
import Testing
@testable import AgentCore
import SandboxPolicy

/// The agent policy file.
@Suite struct AgentPolicyTests {
    private func write(_ text: String, name: String = "policy.json") throws -> String {
        let dir = try TestFiles.scratch("policy")
        let path = dir + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func builtInPolicyMatchesTheDocumentedDefaults() throws {
        let policy = AgentPolicy.default
        #expect(policy == AgentPolicy())
        // What the CLI resolves without --policy or $AGENT_POLICY (built without parsing).
        let resolved = try AgentPolicy.resolve(commandLine: nil, environment: [:])
        #expect(resolved.policy == AgentPolicy.default && resolved.source == "built-in")
        #expect(policy.capabilities == .dockerDefault)
        #expect(policy.seccompProfile == .projectDefault)
        #expect(!policy.allowHostNetwork && !policy.allowNetlink && !policy.allowRawSockets)
        #expect(policy.allowedBindSources.isEmpty)
        #expect(policy.artifactBudgetBytes == 1 << 30)
        #expect(policy.cache == .init(keepBytes: 10_000_000_000, keepPercentOfDisk: 20))
        #expect(policy.maxSecretBytes == 500 * 1024)
        #expect(policy.secrets.isEmpty)
    }

    @Test func secretsAreOperatorSourcesWithOptionalScopes() throws {
        let path = try write("""
        {"secrets": {"npm": {"file": "secrets/npm.txt"}, "abs": {"file": "/etc/agent/abs.txt"},
                     "deploy": {"env": "DEPLOY_TOKEN", "scopes": ["default"]}}}
        """)
        let policy = try AgentPolicy.load(path: path)
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        #expect(policy.secrets["npm"] == .init(source: .file(dir + "/secrets/npm.txt")))
        #expect(policy.secrets["abs"] == .init(source: .file("/etc/agent/abs.txt")))
        #expect(policy.secrets["deploy"] == .init(source: .env("DEPLOY_TOKEN"), scopes: ["default"]))
        #expect(policy.secrets["deploy"]!.isProvided(toScope: "default"))
        #expect(!policy.secrets["deploy"]!.isProvided(toScope: "forks"))
        #expect(policy.secrets["npm"]!.isProvided(toScope: "forks"))
    }

    @Test func secretErrorsNameTheKey() throws {
        #expect(try loadError(#"{"secrets": {"a": {"file": "x", "env": "Y"}}}"#)?.key == "secrets.a")
        #expect(try loadError(#"{"secrets": {"a": {}}}"#)?.key == "secrets.a")
        #expect(try loadError(#"{"secrets": {"a": {"src": "x"}}}"#)?.key == "secrets.a.src")
        #expect(try loadError(#"{"secrets": {"a": {"env": "1X"}}}"#)?.key == "secrets.a.env")
        #expect(try loadError(#"{"secrets": {"a": {"file": ""}}}"#)?.key == "secrets.a.file")
        #expect(try loadError(#"{"secrets": {"a": {"env": "X", "scopes": ["ok", "a/b"]}}}"#)?.key == "secrets.a.scopes[1]")
        #expect(try loadError(#"{"secrets": {"a b": {"env": "X"}}}"#)?.key == "secrets.a b")
        #expect(try loadError(#"{"secrets": {"a": "X"}}"#)?.key == "secrets.a")
    }

    @Test func loadsEveryKey() throws {
        let path = try write("""
        {"capabilities": ["chown", "CAP_KILL"], "seccompProfile": "profiles/strict.json",
         "allowHostNetwork": true, "allowedBindSources": ["/srv/data", "/opt/tools"],
         "allowNetlink": true, "allowRawSockets": true, "artifactBudgetBytes": 1000,
         "cache": {"keepBytes": 2000, "keepPercentOfDisk": 5.5}, "maxSecretBytes": 300}
        """)
        let policy = try AgentPolicy.load(path: path)
        #expect(policy.capabilities.names == ["CAP_CHOWN", "CAP_KILL"])
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        #expect(policy.seccompProfile == .file(dir + "/profiles/strict.json"))
        #expect(policy.allowHostNetwork && policy.allowNetlink && policy.allowRawSockets)
        #expect(policy.allowedBindSources == ["/srv/data", "/opt/tools"])
        #expect(policy.artifactBudgetBytes == 1000)
        #expect(policy.cache == .init(keepBytes: 2000, keepPercentOfDisk: 5.5))
        #expect(policy.maxSecretBytes == 300)
    }

    @Test func missingKeysKeepDefaults() throws {
        let policy = try AgentPolicy.load(path: try write(#"{"allowHostNetwork": true}"#))
        var expected = AgentPolicy()
        expected.allowHostNetwork = true
        #expect(policy == expected)
    }

    private func loadError(_ text: String) throws -> PolicyError? {
        let path = try write(text)
        do {
            _ = try AgentPolicy.load(path: path)
            return nil
        } catch let error as PolicyError {
            #expect(error.file == path)
            #expect("\(error)".hasPrefix("policy \(path): "))
            return error
        }
    }

    @Test func errorsNameTheFileAndKey() throws {
        #expect(try loadError(#"{"allowHostNetwork": "yes"}"#)?.key == "allowHostNetwork")
        #expect(try loadError(#"{"capabilities": ["CAP_CHOWN", "CAP_FLY"]}"#)?.key == "capabilities[1]")
        #expect(try loadError(#"{"capabilties": []}"#)?.key == "capabilties")
        #expect(try loadError(#"{"cache": {"keepBytes": -1}}"#)?.key == "cache.keepBytes")
        #expect(try loadError(#"{"cache": {"keepPercent": 3}}"#)?.key == "cache.keepPercent")
        #expect(try loadError(#"{"cache": {"keepPercentOfDisk": 120}}"#)?.key == "cache.keepPercentOfDisk")
        #expect(try loadError(#"{"allowedBindSources": ["relative/path"]}"#)?.key == "allowedBindSources[0]")
        #expect(try loadError(#"{"allowedBindSources": ["/srv/../etc"]}"#)?.key == "allowedBindSources[0]")
        #expect(try loadError(#"{"seccompProfile": ""}"#)?.key == "seccompProfile")
        #expect(try loadError(#"{"maxSecretBytes": 1.5}"#)?.key == "maxSecretBytes")
        let notJSON = try loadError("{")
        #expect(notJSON?.key == nil)
        #expect(notJSON?.problem.contains("not valid JSON") == true)
    }

    @Test func processAndReportLimitsHaveDefaultsAndAreRead() throws {
        let d = AgentPolicy.default
        #expect(d.defaultPids == 4096)
        #expect(d.reports == .init(maxFiles: 1000, maxTotalBytes: 256 << 20, maxFileBytes: 64 << 20, maxCases: 100_000))
        let p = try AgentPolicy.load(path: try write(#"{"defaultPids": 512, "reports": {"maxFiles": 10, "maxTotalBytes": 1000}}"#))
        #expect(p.defaultPids == 512)
        #expect(p.reports == .init(maxFiles: 10, maxTotalBytes: 1000, maxFileBytes: 64 << 20))
        #expect(try loadError(#"{"defaultPids": 0}"#)?.key == "defaultPids")
        #expect(try loadError(#"{"reports": {"maxFile": 3}}"#)?.key == "reports.maxFile")
        #expect(try loadError(#"{"reports": {"maxTotalBytes": -1}}"#)?.key == "reports.maxTotalBytes")
        // The JSON form round-trips the new keys.
        let again = try AgentPolicy.load(path: try write(p.jsonText))
        #expect(again == p)
    }

    @Test func outboundNetworkKeysAreReadAndCheckedByName() throws {
        let d = AgentPolicy.default
        #expect(d.sandbox.allowOutboundNetwork == false)
        #expect(d.sandbox.network == .init())
        let p = try AgentPolicy.load(path: try write(
            #"{"allowOutboundNetwork": true, "network": {"stack": "slirp4netns", "deniedCIDRs": ["10.0.0.0/8", "fd00::/8", "192.0.2.7"], "allowedHostPorts": [5432], "mtu": 1500}}"#))
        #expect(p.sandbox.allowOutboundNetwork)
        #expect(p.sandbox.network.deniedCIDRs == ["10.0.0.0/8", "fd00::/8", "192.0.2.7"])
        #expect(p.sandbox.network.allowedHostPorts == [5432] && p.sandbox.network.mtu == 1500)
        #expect(try AgentPolicy.load(path: try write(p.jsonText)) == p)
        #expect(try loadError(#"{"network": {"stack": "pasta2"}}"#)?.key == "network.stack")
        #expect(try loadError(#"{"network": {"deniedCIDRs": ["10.0.0.0/33"]}}"#)?.key == "network.deniedCIDRs[0]")
        #expect(try loadError(#"{"network": {"deniedCIDRs": ["ten/8"]}}"#)?.key == "network.deniedCIDRs[0]")
        #expect(try loadError(#"{"network": {"allowedHostPorts": [0]}}"#)?.key == "network.allowedHostPorts[0]")
        #expect(try loadError(#"{"network": {"allowedHostPorts": [70000]}}"#)?.key == "network.allowedHostPorts[0]")
        #expect(try loadError(#"{"network": {"mtu": 100}}"#)?.key == "network.mtu")
        #expect(try loadError(#"{"network": {"deny": []}}"#)?.key == "network.deny")
    }

    @Test func missingFileIsNamed() {
        #expect(throws: PolicyError.self) { try AgentPolicy.load(path: "/nonexistent/policy.json") }
        do {
            _ = try AgentPolicy.load(path: "/nonexistent/policy.json")
        } catch {
            #expect("\(error)".contains("/nonexistent/policy.json"))
            #expect("\(error)".contains("No such file"))
        }
    }

    @Test func resolutionOrderIsFlagThenEnvironmentThenBuiltIn() throws {
        let flag = try write(#"{"allowNetlink": true}"#)
        let env = try write(#"{"allowRawSockets": true}"#)
        let fromFlag = try AgentPolicy.resolve(commandLine: flag, environment: ["AGENT_POLICY": env])
        #expect(fromFlag.source == flag && fromFlag.policy.allowNetlink && !fromFlag.policy.allowRawSockets)
        let fromEnv = try AgentPolicy.resolve(commandLine: nil, environment: ["AGENT_POLICY": env])
        #expect(fromEnv.source == env && fromEnv.policy.allowRawSockets)
        let builtIn = try AgentPolicy.resolve(commandLine: nil, environment: [:])
        #expect(builtIn.source == "built-in" && builtIn.policy == .default)
    }

    /// The one resolver the CLI uses (run-job, watch and exec): a flag wins without the
    /// environment's file being read at all; a broken file is an error, never a fallback.
    @Test func resolutionNeverFallsBackPastABrokenFile() throws {
        let flag = try write(#"{"allowHostNetwork": true}"#)
        let fromFlag = try AgentPolicy.resolve(commandLine: flag, environment: ["AGENT_POLICY": "/nonexistent/env.json"])
        #expect(fromFlag.source == flag && fromFlag.policy.allowHostNetwork)
        #expect(throws: PolicyError.self) {
            try AgentPolicy.resolve(commandLine: nil, environment: ["AGENT_POLICY": "/nonexistent/env.json"])
        }
        #expect(throws: PolicyError.self) {
            try AgentPolicy.resolve(commandLine: "/nonexistent/flag.json", environment: [:])
        }
        // An empty value means "not set" (e.g. `AGENT_POLICY=` in a unit file).
        #expect(try AgentPolicy.resolve(commandLine: nil, environment: ["AGENT_POLICY": ""]).source == "built-in")
    }

    @Test func seccompPolicyFollowsTheSettings() throws {
        var policy = AgentPolicy()
        #expect(try policy.seccompPolicy() == .projectDefault)
        policy.allowNetlink = true
        #expect(try policy.seccompPolicy() == .projectDefault(allowNetlink: true, allowRawSockets: false))
        policy.seccompProfile = .unconfined
        #expect(try policy.seccompPolicy() == .unconfined)

        let docker = try TestFiles.dockerProfile()
        let profilePath = try write(docker, name: "docker.json")
        let loaded = try AgentPolicy.load(path: try write(#"{"seccompProfile": "\#(profilePath)"}"#))
        #expect(try loaded.seccompPolicy() == .profile(json: docker))

        let broken = try write(#"{"defaultAction": "SCMP_ACT_NOPE"}"#, name: "broken.json")
        policy.seccompProfile = .file(broken)
        #expect(throws: PolicyError.self) { try policy.seccompPolicy() }
        policy.seccompProfile = .file("/nonexistent/profile.json")
        #expect(throws: PolicyError(file: "/nonexistent/profile.json", key: "seccompProfile",
                                    problem: "seccomp profile /nonexistent/profile.json: cannot read the file (No such file or directory)")) {
            try policy.seccompPolicy()
        }
    }

    @Test func bindSourcesCompareWholeComponents() {
        var policy = AgentPolicy()
        policy.allowedBindSources = ["/srv/data"]
        #expect(policy.allowsBindSource("/srv/data"))
        #expect(policy.allowsBindSource("/srv/data/x/y"))
        #expect(!policy.allowsBindSource("/srv/database"))
        #expect(!policy.allowsBindSource("/srv/data/../../etc"))
        #expect(!policy.allowsBindSource("srv/data"))
        #expect(!AgentPolicy().allowsBindSource("/"))
    }

    @Test func capabilityRequestsOnlyNarrow() throws {
        let policy = AgentPolicy()
        #expect(try policy.capabilities(drop: ["ALL"], add: ["CHOWN"]).names == ["CAP_CHOWN"])
        #expect(throws: CapabilityError.notAllowed("CAP_SYS_ADMIN")) { try policy.capabilities(drop: [], add: ["SYS_ADMIN"]) }
    }

    @Test func codableRoundTrip() throws {
        var policy = AgentPolicy()
        policy.allowedBindSources = ["/srv"]
        policy.cache.keepPercentOfDisk = 12.5
        policy.secrets = ["npm": .init(source: .file("/etc/npm")), "d": .init(source: .env("D"), scopes: ["default"])]
        let data = try JSONEncoder().encode(policy)
        #expect(try JSONDecoder().decode(AgentPolicy.self, from: data) == policy)
        #expect(try JSONDecoder().decode(AgentPolicy.self, from: Data(AgentPolicy.default.jsonText.utf8)) == .default)
        #expect(throws: PolicyError.self) { try JSONDecoder().decode(AgentPolicy.self, from: Data(#"{"nope": 1}"#.utf8)) }
    }
}
