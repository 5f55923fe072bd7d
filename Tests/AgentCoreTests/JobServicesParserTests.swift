import FoundationEssentials
@testable import Images
import Sandbox
import SandboxPolicy
import Testing
@testable import AgentCore

/// `services[]`: what a job may ask for, and every bad or hostile entry refused naming its
/// JSON path (exit 2 in run-job and validate).
@Suite struct JobServicesParserTests {
    /// A job with `services` (JSON text of the array) and one step.
    func job(_ services: String, extra: String = "", step: String = #"{"name": "s", "run": "true"}"#) -> String {
        #"{"version": 1, "id": "svcjob", \#(extra) "services": \#(services), "steps": [\#(step)]}"#
    }

    @Test func shortAndLongFormsWithDefaults() throws {
        let spec = try parseJob(job(#"""
        ["postgres:15", "registry.example:5000/x/my_db@sha256:\#(String(repeating: "a", count: 64))",
         {"name": "host", "alias": ["db", "pg.local"], "user": "1000:1001",
          "command": ["sh", "-c", "exec postgres"], "variables": {"PGDATA": "/tmp/pg"},
          "healthcheck": {"tcp": 5432, "timeout": "2s", "interval": "100ms"}, "allow_unhealthy": true,
          "secrets": ["pg", {"id": "pg", "env": "POSTGRES_PASSWORD"}]},
         {"name": {"rootfs": "bb"}, "alias": "web", "entrypoint": ["httpd", "-f"], "healthcheck": {"cmd": ["true"]}}]
        """#, extra: #""secrets": {"pg": {}}, "services_stop_grace": "3s","#))
        #expect(spec.services.count == 4)
        #expect(spec.servicesStopGrace == .seconds(3))
        let pg = spec.services[0]
        #expect(pg.aliases == ["postgres"])
        #expect(pg.healthTimeout == .seconds(30) && pg.healthInterval == .milliseconds(250))
        #expect(pg.healthcheck == nil && !pg.allowUnhealthy && !pg.userGiven)
        #expect(spec.services[1].aliases == ["my-db"])
        let db = spec.services[2]
        #expect(db.name == .host)
        #expect(db.aliases == ["db", "pg.local"])
        #expect(db.uid == 1000 && db.gid == 1001 && db.userGiven)
        #expect(db.command == ["sh", "-c", "exec postgres"])
        #expect(db.variables == ["PGDATA": "/tmp/pg"])
        #expect(db.healthcheck == .tcp(5432))
        #expect(db.healthTimeout == .seconds(2) && db.healthInterval == .milliseconds(100))
        #expect(db.allowUnhealthy)
        #expect(db.secrets == [ServiceSecret(id: "pg"), ServiceSecret(id: "pg", env: "POSTGRES_PASSWORD")])
        let web = spec.services[3]
        #expect(web.name == .rootfs("bb"))
        #expect(web.entrypoint == ["httpd", "-f"] && web.command == nil)
        #expect(web.healthcheck == .cmd(["true"]))
    }

    @Test(arguments: [
        // Each bad input and the start of the error it must give (file and JSON path first).
        (#""nope""#, #"job.json: services: expected an array of services, got string"#),
        (#"[{"name": "postgres", "aliass": "db"}]"#, #"job.json: services[0]: unknown key "aliass" (did you mean "alias"?)"#),
        (#"[{"alias": "db"}]"#, #"job.json: services[0]: missing required key "name""#),
        (#"[{"name": "postgres", "alias": "localhost"}]"#, #"job.json: services[0].alias: "localhost" is a name every container resolves"#),
        (#"[{"name": "postgres", "alias": "LocalHost"}]"#, #"job.json: services[0].alias: "localhost" is a name"#),
        (#"[{"name": "postgres", "alias": "svcjob"}]"#, #"job.json: services[0].alias: "svcjob" is the steps' host name"#),
        (#"[{"name": "postgres", "alias": "../x"}]"#, #"job.json: services[0].alias: "../x" is not a valid alias"#),
        (#"[{"name": "postgres", "alias": "a b"}]"#, #"job.json: services[0].alias: "a b" is not a valid alias"#),
        (#"[{"name": "postgres", "alias": "-db"}]"#, #"job.json: services[0].alias: "-db" is not a valid alias"#),
        (#"[{"name": "postgres", "alias": "10.0.2.2"}]"#, #"job.json: services[0].alias: "10.0.2.2" is not a valid alias"#),
        (#"[{"name": "postgres", "alias": "db."}]"#, #"job.json: services[0].alias: "db." is not a valid alias"#),
        (#"[{"name": "postgres", "alias": "\#(String(repeating: "a", count: 1000))"}]"#,
         #"job.json: services[0].alias: an alias is at most 63 bytes long, got 1000"#),
        (#"[{"name": "postgres", "alias": []}]"#, #"job.json: services[0].alias: must contain at least one alias"#),
        (#"["postgres:15", {"name": "redis", "alias": ["cache", "postgres"]}]"#, #"job.json: services[1].alias: "postgres" is used by services[0]"#),
        (#"[{"name": "redis", "alias": ["db", "db"]}]"#, #"job.json: services[0].alias: "db" is used by this service twice"#),
        (#"["host"]"#, #"job.json: services[0]: a "host" service needs an object with "alias" and "command""#),
        (#"[{"name": "host", "alias": "db"}]"#, #"job.json: services[0]: a "host" service needs a "command""#),
        (#"[{"name": "host", "command": ["x"]}]"#, #"job.json: services[0].name: a service on "host" needs an "alias""#),
        (#"[{"name": "Bad Ref!"}]"#, #"job.json: services[0].name: "#),
        (#"[{"name": "redis", "command": []}]"#, #"job.json: services[0].command: must not be empty"#),
        (#"[{"name": "redis", "command": "redis-server"}]"#, #"job.json: services[0].command: expected an array of strings"#),
        (#"[{"name": "redis", "healthcheck": {"tcp": 0}}]"#, #"job.json: services[0].healthcheck.tcp: port 0 is out of range 1...65535"#),
        (#"[{"name": "redis", "healthcheck": {"tcp": 1, "cmd": ["x"]}}]"#, #"job.json: services[0].healthcheck: give either "tcp" or "cmd", not both"#),
        (#"[{"name": "redis", "healthcheck": {"tpc": 1}}]"#, #"job.json: services[0].healthcheck: unknown key "tpc" (did you mean "tcp"?)"#),
        (#"[{"name": "redis", "healthcheck": {"timeout": "forever"}}]"#, #"job.json: services[0].healthcheck.timeout: "#),
        (#"[{"name": "redis", "healthcheck": {"interval": "1ms"}}]"#, #"job.json: services[0].healthcheck.interval: must be at least 50ms"#),
        (#"[{"name": "redis", "healthcheck": {"tcp": 6379}}, {"name": "valkey", "healthcheck": {"tcp": 6379}}]"#,
         #"job.json: services[1].healthcheck.tcp: port 6379 is also claimed by services[0]"#),
        (#"[{"name": "redis", "user": "redis"}]"#, #"job.json: services[0].user: "redis" is not a user"#),
        (#"[{"name": "redis", "secrets": ["undeclared"]}]"#, #"job.json: services[0].secrets[0]: secret "undeclared" is not declared in the job's "secrets""#),
        (#"[{"name": "redis", "secrets": [{"id": "../x"}]}]"#, #"job.json: services[0].secrets[0].id: "../x" is not a valid secret id"#),
        (#"[{"name": "redis", "variables": {"A B": "x"}}]"#, #"job.json: services[0].variables["A B"]: "A B" is not a valid environment variable name"#),
        (#"[{"name": "redis", "allow_unhealthy": "yes"}]"#, #"job.json: services[0].allow_unhealthy: expected true or false, got string"#),
        (#"[{"name": {"rootfs": ""}, "alias": "x", "command": ["x"]}]"#, #"job.json: services[0].name.rootfs: must not be empty"#),
    ])
    func badEntriesNameTheirPath(services: String, expected: String) {
        let e = jobError(job(services)) ?? "valid"
        #expect(e.hasPrefix(expected), "\(e)")
    }

    @Test func nineServicesAreTooMany() {
        let nine = "[" + (1...9).map { #"{"name": "redis", "alias": "r\#($0)"}"# }.joined(separator: ",") + "]"
        #expect(jobError(job(nine)) == "job.json: services: at most 8 services per job, got 9")
        let eight = "[" + (1...8).map { #"{"name": "redis", "alias": "r\#($0)"}"# }.joined(separator: ",") + "]"
        #expect(jobError(job(eight)) == nil)
    }

    @Test func theNetworkIsTheJobsForEveryStep() {
        let svc = #"["redis"]"#
        #expect(jobError(job(svc, extra: #""network": "host","#))?.hasPrefix(#"job.json: network: "host" cannot be used with services"#) == true)
        #expect(jobError(job(svc, step: #"{"name": "s", "run": "true", "network": "host"}"#))
            == #"job.json: steps[0].network: "host": the host network cannot reach the job's services"#)
        #expect(jobError(job(svc, extra: #""network": "outbound","#, step: #"{"name": "s", "run": "true", "network": "none"}"#))?
            .hasPrefix(#"job.json: steps[0].network: "none": with services every step shares the job's network"#) == true)
        #expect(jobError(job(svc, extra: #""network": "outbound","#, step: #"{"name": "s", "run": "true", "network": "outbound"}"#)) == nil)
        // Without services a step may still choose its own network.
        #expect(jobError(#"{"version": 1, "network": "outbound", "steps": [{"name": "s", "run": "true", "network": "none"}]}"#) == nil)
        #expect(jobError(job(svc, extra: #""services_stop_grace": "soon","#)) != nil)
        #expect(jobError(job(svc, extra: #""services_stop_grace": "1h","#)) == "job.json: services_stop_grace: must be at most 5m")
    }

    @Test func theJobKeyIsSuggested() {
        #expect(jobError(#"{"version": 1, "service": [], "steps": [{"name": "s", "run": "true"}]}"#)
            == #"job.json: unknown key "service" (did you mean "services"?)"#)
    }

    @Test func preparedServiceCommandsFollowDockersRules() {
        var s = PreparedService(index: 0, spec: ServiceSpec(name: .host, aliases: ["db"]))
        var image = PreparedImage(reference: "r", digest: Digest("sha256:" + String(repeating: "b", count: 64))!, config: ImageConfig(), layers: [])
        image.config.entrypoint = ["docker-entrypoint.sh"]
        image.config.cmd = ["postgres"]
        image.config.exposedPorts = ["5432/tcp", "53/udp", "8080"]
        image.config.healthcheckTest = ["CMD-SHELL", "pg_isready"]
        s.image = image
        #expect(s.argv == ["docker-entrypoint.sh", "postgres"])
        s.spec.command = ["postgres", "-c", "fsync=off"]
        #expect(s.argv == ["docker-entrypoint.sh", "postgres", "-c", "fsync=off"])
        s.spec.command = nil
        s.spec.entrypoint = ["sh"]
        #expect(s.argv == ["sh"])  // a new entrypoint drops the image's Cmd
        #expect(s.exposedTCPPorts == [5432, 8080])
        #expect(s.healthDescription == "exposed ports 5432, 8080")
        #expect(s.imageHealthcheck == ["/bin/sh", "-c", "pg_isready"])
        s.spec.healthcheck = .tcp(9000)
        #expect(s.claimedPorts == [9000, 5432, 8080])
        #expect(s.healthDescription == "tcp 9000")
        image.config.exposedPorts = []
        s.image = image
        s.spec.healthcheck = nil
        #expect(s.healthDescription == "image healthcheck")
    }
}

/// Service names are requests: admission grants them as it grants the job's image or rootfs.
@Suite struct ServiceAdmissionTests {
    func admit(_ services: [ServiceSpec], policy: (inout AgentPolicy) -> Void = { _ in }, base: String) -> String {
        var job = JobSpec(id: "j", steps: [StepSpec(name: "s", run: .shell("true"))], baseDirectory: base)
        job.services = services
        var p = AgentPolicy()
        policy(&p)
        var protected = ProtectedPaths()
        protected.add("the agent's state folder", base + "/state", below: true)
        do {
            let a = try Admission.admit(job, file: "job.json", grant: OperatorGrant(policy: p, protected: protected))
            return "admitted \(a.serviceRoots.keys.sorted())"
        } catch {
            return "\(error)"
        }
    }

    @Test func namesAreGrantedLikeTheJobsImage() throws {
        let base = "/tmp/svc-admission-\(UUID().uuidString.prefix(8))"
        for d in ["rootfs", "state"] { try FileManager.default.createDirectory(atPath: base + "/" + d, withIntermediateDirectories: true) }
        defer { try? FileManager.default.removeItem(atPath: base) }
        let redis = ServiceSpec(name: .image(try ImageSource.parse("redis:7")), aliases: ["redis"])
        #expect(admit([redis], base: base).hasPrefix(#"job.json: services[0].name: "docker.io/library/redis:7" is from registry docker.io, which the agent policy does not allow"#))
        #expect(admit([redis], policy: { $0.images.allowedRegistries = ["docker.io"] }, base: base) == "admitted []")
        let local = ServiceSpec(name: .image(try ImageSource.parse("oci:layout")), aliases: ["x"])
        #expect(admit([local], base: base).contains("local image sources are not supported for services"))
        #expect(admit([ServiceSpec(name: .host, aliases: ["h"])], base: base) == "admitted []")
        #expect(admit([ServiceSpec(name: .rootfs("rootfs"), aliases: ["r"])], base: base) == "admitted [0]")
        // Outside the job's folder and the granted roots; the agent's state folder.
        for dir in ["/", "/etc", "../", "state"] {
            let e = admit([ServiceSpec(name: .host, aliases: ["h"]), ServiceSpec(name: .rootfs(dir), aliases: ["r"])], base: base)
            #expect(e.hasPrefix("job.json: services[1].name.rootfs: "), "\(dir): \(e)")
        }
        #expect(admit([ServiceSpec(name: .rootfs("/etc"), aliases: ["r"])], policy: { $0.rootfsRoots = ["/etc"] }, base: base) == "admitted [0]")
    }
}

/// A service's free text in status.json (reason, names) is redacted before it is encoded.
@Suite struct ServiceStatusRedactionTests {
    @Test func serviceFieldsAreRedactedBeforeEncoding() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("svc-redact-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let runner = JobRunner(options: RunnerOptions(stateDirectory: dir, policy: AgentPolicy(), environment: [:], workingDirectory: dir))
        let all = RedactBeforeEncodingTests.hostile.values.sorted().joined(separator: " / ")
        var status = JobStatus(jobID: "j", state: .failed, exitCode: 1, startedAt: "t")
        var svc = ServiceStatus(alias: "db", aliases: ["db"], name: "host", state: "unhealthy", health: "cmd", log: "logs/service-db.log")
        svc.reason = "service \"db\" could not start: \(all)"
        status.services = [svc]
        let json = String(decoding: try runner.encode(status, secrets: RedactBeforeEncodingTests.secrets()), as: UTF8.self)
        RedactBeforeEncodingTests.expectNoLeak(json)
        let decoded = try JSONDecoder().decode(JobStatus.self, from: Data(json.utf8))
        #expect(decoded.services?.first?.reason == "service \"db\" could not start: *** / *** / ***")
        #expect(decoded.services?.first?.state == "unhealthy")
        // A job without services has no "services" key at all.
        let plain = String(decoding: try runner.encode(JobStatus(jobID: "j", state: .succeeded, exitCode: 0, startedAt: "t"),
                                                       secrets: RedactBeforeEncodingTests.secrets()), as: UTF8.self)
        #expect(!plain.contains("\"services\""))
    }
}
