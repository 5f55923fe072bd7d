import Foundation
import Testing
@testable import AgentCore

/// Parses `json` as `job.json` in a scratch folder; returns the error text, or nil if valid.
func jobError(_ json: String, file: String = "job.json", base: String = NSTemporaryDirectory()) -> String? {
    do {
        _ = try JobParser.parse(data: Data(json.utf8), fileName: file, baseDirectory: base)
        return nil
    } catch let e as JobValidationError {
        return e.description
    } catch {
        return "unexpected \(error)"
    }
}

func parseJob(_ json: String, file: String = "job.json", base: String = NSTemporaryDirectory()) throws -> JobSpec {
    try JobParser.parse(data: Data(json.utf8), fileName: file, baseDirectory: base)
}

/// A valid job around one step object (written as JSON text).
func oneStep(_ step: String, job: String = "") -> String {
    #"{"version": 1, \#(job) "steps": [\#(step)]}"#
}

@Suite struct JobParserTests {
    @Test func minimalJobGetsDefaults() throws {
        let spec = try parseJob(#"{"version": 1, "steps": [{"name": "build", "run": "make"}]}"#, file: "dir/web-build.json", base: "/srv/jobs")
        #expect(spec.id == "web-build")
        #expect(spec.image == .host)
        #expect(spec.network == .none)
        #expect(spec.timeout == .seconds(3600))
        #expect(spec.cacheScope == "default")
        #expect(spec.baseDirectory == "/srv/jobs")
        #expect(spec.steps.count == 1)
        let step = spec.steps[0]
        #expect(step.run == .shell("make"))
        #expect(step.run.argv == ["/bin/sh", "-c", "make"])
        #expect(step.workdir == "/workspace")
        #expect(step.when == .onSuccess)
        #expect(step.type == .build)
        #expect(step.uid == 0 && step.gid == 0)
        #expect(step.timeout == nil)
    }

    @Test func fullJobFromTheIssue() throws {
        let base = NSTemporaryDirectory() + "jobparser-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: base + "/src", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: base) }
        let spec = try parseJob("""
        {
          "version": 1, "id": "web-build-42", "image": "host", "workspace": "src",
          "env": {"CI": "true"}, "network": "host", "timeout": "30m",
          "resources": {"pids": 1024, "nofile": 4096, "memory": "512m", "fsize": 1048576},
          "cache": {"scope": "forks"},
          "secrets": {"npm": {}, "token": {"required": true}},
          "artifacts": [{"name": "dist", "paths": ["dist/**"], "exclude": ["**/*.map"], "when": "always", "required": true}],
          "steps": [
            {"name": "build", "run": "make -j2", "timeout": "10m", "user": "1000:1001", "workdir": "/workspace/sub"},
            {"name": "package", "run": ["tar", "czf", "dist.tgz", "out"], "env": {"GZIP": "-9"}, "allow_failure": true, "user": 7},
            {"name": "test", "type": "test", "run": "make test", "reports": ["build/*.xml"],
             "tmpfs": ["/workspace/.cache:size=16m", "/scratch:mode=700"], "workspace": "overlay", "fail_on_report_failures": false},
            {"name": "cleanup", "run": "rm -rf tmp", "when": "always"}
          ]
        }
        """, base: base)
        #expect(spec.id == "web-build-42")
        #expect(spec.workspace == "src")
        #expect(spec.env == ["CI": "true"])
        #expect(spec.network == .host)
        #expect(spec.timeout == .seconds(1800))
        #expect(spec.resources.pids == 1024 && spec.resources.nofile == 4096)
        #expect(spec.resources.memory == 512 << 20 && spec.resources.fsize == 1 << 20)
        #expect(spec.requestedCacheScope == "forks")
        #expect(spec.secrets["npm"] == SecretSpec())
        #expect(spec.secrets["token"] == SecretSpec(required: true))
        var rule = ArtifactRule(name: "dist", paths: ["dist/**"])
        rule.exclude = ["**/*.map"]; rule.when = .always; rule.required = true
        #expect(spec.artifacts == [rule])
        #expect(spec.steps.map(\.name) == ["build", "package", "test", "cleanup"])
        #expect(spec.steps[0].timeout == .seconds(600))
        #expect(spec.steps[0].uid == 1000 && spec.steps[0].gid == 1001)
        #expect(spec.steps[0].workdir == "/workspace/sub")
        #expect(spec.steps[1].run == .argv(["tar", "czf", "dist.tgz", "out"]))
        #expect(spec.steps[1].allowFailure && spec.steps[1].uid == 7 && spec.steps[1].gid == 7)
        let test = spec.steps[2]
        #expect(test.type == .test && test.reports == ["build/*.xml"] && test.overlayWorkspace && !test.failOnReportFailures)
        #expect(test.tmpfs == [.tmpfs(target: "/workspace/.cache", size: 16 << 20, mode: 0o1777),
                               .tmpfs(target: "/scratch", size: nil, mode: 0o700)])
        #expect(spec.steps[3].when == .always)
    }

    @Test func rootfsImageIsKeptAsWritten() throws {
        let spec = try parseJob(oneStep(#"{"name": "a", "run": "x"}"#, job: #""image": {"rootfs": "../rootfs"},"#), base: "/srv/jobs")
        #expect(spec.image == .rootfs("../rootfs"))
    }

    @Test func syntaxErrorsNameLineAndColumn() {
        #expect(jobError("{\"version\": 1,\n  \"steps\": ]}") == "job.json: not valid JSON: Invalid value at line 2, column 12")
        #expect(jobError("[1]") == "job.json: expected a JSON object (the job), got array")
    }

    @Test func unknownKeysSuggestTheNearestKnownKey() {
        #expect(jobError(oneStep(#"{"name": "a", "run": "x"}, {"name": "b", "run": "x"}, {"name": "c", "run": "x", "mount": []}"#))
                == #"job.json: steps[2]: unknown key "mount" (did you mean "mounts"?)"#)
        #expect(jobError(#"{"version": 1, "step": []}"#) == #"job.json: unknown key "step" (did you mean "steps"?)"#)
        #expect(jobError(oneStep(#"{"name": "a", "run": "x", "allow-failure": true}"#))
                == #"job.json: steps[0]: unknown key "allow-failure" (did you mean "allow_failure"?)"#)
        #expect(jobError(oneStep(#"{"name": "a", "run": "x", "timout": "1s"}"#))
                == #"job.json: steps[0]: unknown key "timout" (did you mean "timeout"?)"#)
        #expect(jobError(oneStep(#"{"name": "a", "run": "x", "frobnicate": 1}"#))
                == #"job.json: steps[0]: unknown key "frobnicate""#)
        #expect(jobError(oneStep(#"{"name": "a", "run": "x"}"#, job: #""resources": {"memroy": "1g"},"#))
                == #"job.json: resources: unknown key "memroy" (did you mean "memory"?)"#)
    }

    @Test func missingRequiredKeys() {
        #expect(jobError(#"{"steps": [{"name": "a", "run": "x"}]}"#) == #"job.json: missing required key "version""#)
        #expect(jobError(#"{"version": 1}"#) == #"job.json: missing required key "steps""#)
        #expect(jobError(oneStep(#"{"name": "a"}"#)) == #"job.json: steps[0]: missing required key "run""#)
        #expect(jobError(oneStep(#"{"run": "x"}"#)) == #"job.json: steps[0]: missing required key "name""#)
    }

    @Test func versionMustBeOne() {
        #expect(jobError(#"{"version": 2, "steps": []}"#) == "job.json: version: unsupported version 2: this agent reads version 1")
        #expect(jobError(#"{"version": "1", "steps": []}"#) == "job.json: version: expected the number 1, got string")
        #expect(jobError(#"{"version": 1.5, "steps": []}"#) == "job.json: version: expected the number 1, got 1.5")
    }

    @Test func wrongTypesNameTheExpectedType() {
        #expect(jobError(oneStep(#"{"name": "a", "run": "x", "timeout": 90}"#))
                == #"job.json: steps[0].timeout: expected a duration string like "90s", got number"#)
        #expect(jobError(oneStep(#"{"name": "a", "run": "x", "allow_failure": "yes"}"#))
                == "job.json: steps[0].allow_failure: expected true or false, got string")
        #expect(jobError(oneStep(#"{"name": "a", "run": 5}"#))
                == "job.json: steps[0].run: expected a command string or an array of strings, got number")
        #expect(jobError(#"{"version": 1, "steps": {}}"#) == "job.json: steps: expected an array of steps, got object")
        #expect(jobError(oneStep(#"{"name": "a", "run": "x"}"#, job: #""env": {"CI": true},"#))
                == "job.json: env.CI: expected a string (quote numbers and booleans), got boolean")
        #expect(jobError(oneStep(#"{"name": "a", "run": "x"}"#, job: #""resources": {"pids": true},"#))
                == "job.json: resources.pids: expected a positive whole number, got boolean")
        #expect(jobError(oneStep(#"{"name": "a", "run": "x", "env": null}"#))
                == "job.json: steps[0].env: expected an object of environment variables (name: string value), got null")
    }

    @Test func jobIDs() {
        #expect(jobError(oneStep(#"{"name": "a", "run": "x"}"#, job: #""id": "my job","#))
                == #"job.json: id: "my job" is not a valid job id: use 1 to 128 characters from A-Z a-z 0-9 . _ - (not "." or "..")"#)
        #expect(jobError(oneStep(#"{"name": "a", "run": "x"}"#, job: #""id": "..","#))?.hasPrefix(#"job.json: id: ".." is not a valid job id"#) == true)
        #expect(jobError(oneStep(#"{"name": "a", "run": "x"}"#, job: "\"id\": \"\(String(repeating: "a", count: 129))\","))?.contains("is not a valid job id") == true)
        #expect(jobError(oneStep(#"{"name": "a", "run": "x"}"#), file: "my job.json")
                == #"my job.json: the job id defaults to the file name, and "my job" is not a valid job id: use 1 to 128 characters from A-Z a-z 0-9 . _ - (not "." or ".."); set "id""#)
        #expect(JobParser.isValidName("a.b_c-1") && !JobParser.isValidName("") && !JobParser.isValidName("a/b"))
    }

    @Test func stepsMustBeNonEmptyAndUniquelyNamed() {
        #expect(jobError(#"{"version": 1, "steps": []}"#) == "job.json: steps: must contain at least one step")
        #expect(jobError(oneStep(#"{"name": "a", "run": "x"}, {"name": "build", "run": "x"}, {"name": "c", "run": "x"}, {"name": "build", "run": "y"}"#))
                == #"job.json: steps[3].name: duplicate step name "build" (also steps[1])"#)
        #expect(jobError(oneStep(#"{"name": "", "run": "x"}"#)) == "job.json: steps[0].name: must not be empty")
    }

    @Test func badDurations() {
        let malformed = #"is not a duration: use whole numbers with units h, m, s or ms, like "90s", "30m", "1h30m" or "500ms""#
        #expect(jobError(oneStep(#"{"name": "a", "run": "x"}"#, job: #""timeout": "90","#)) == #"job.json: timeout: "90" "# + malformed)
        #expect(jobError(oneStep(#"{"name": "a", "run": "x", "timeout": "1.5h"}"#)) == #"job.json: steps[0].timeout: "1.5h" "# + malformed)
        #expect(jobError(oneStep(#"{"name": "a", "run": "x", "timeout": "30m1h"}"#)) == #"job.json: steps[0].timeout: "30m1h" "# + malformed)
        #expect(jobError(oneStep(#"{"name": "a", "run": "x", "timeout": "0s"}"#))
                == #"job.json: steps[0].timeout: duration "0s" must be greater than zero"#)
    }

    @Test func enumsSuggestValues() {
        #expect(jobError(oneStep(#"{"name": "a", "run": "x", "when": "allways"}"#))
                == #"job.json: steps[0].when: "allways" is not one of "on_success", "on_failure", "always" (did you mean "always"?)"#)
        #expect(jobError(oneStep(#"{"name": "a", "run": "x", "type": "unit"}"#))
                == #"job.json: steps[0].type: "unit" is not one of "build", "test""#)
        #expect(jobError(oneStep(#"{"name": "a", "run": "x"}"#, job: #""network": "bridge","#))
                == #"job.json: network: "bridge" is not one of "none", "host", "outbound""#)
        #expect(jobError(oneStep(#"{"name": "a", "run": "x", "network": "wifi"}"#))
                == #"job.json: steps[0].network: "wifi" is not one of "none", "host", "outbound""#)
    }

    @Test func aStepMayHaveItsOwnNetwork() throws {
        let spec = try parseJob(oneStep(#"{"name": "a", "run": "x", "network": "outbound"}, {"name": "b", "run": "y"}"#, job: #""network": "none","#))
        #expect(spec.network == .none)
        #expect(spec.steps.map(\.network) == [.outbound, nil])
    }

    @Test func runForms() {
        #expect(jobError(oneStep(#"{"name": "a", "run": []}"#)) == "job.json: steps[0].run: the argv array must not be empty")
        #expect(jobError(oneStep(#"{"name": "a", "run": ["ls", 1]}"#)) == "job.json: steps[0].run[1]: expected a string, got number")
        #expect(jobError(oneStep(#"{"name": "a", "run": "  "}"#)) == "job.json: steps[0].run: the command must not be empty")
        #expect(jobError(oneStep(#"{"name": "a", "run": [""]}"#)) == "job.json: steps[0].run[0]: the program must not be empty")
    }

    @Test func users() throws {
        #expect(try parseJob(oneStep(#"{"name": "a", "run": "x", "user": "1000"}"#)).steps[0].gid == 1000)
        #expect(jobError(oneStep(#"{"name": "a", "run": "x", "user": "nobody"}"#))
                == #"job.json: steps[0].user: "nobody" is not a user: use numeric ids, "uid" or "uid:gid" (names are not looked up)"#)
        #expect(jobError(oneStep(#"{"name": "a", "run": "x", "user": "1:2:3"}"#))?.contains("is not a user") == true)
        #expect(jobError(oneStep(#"{"name": "a", "run": "x", "user": -1}"#)) == "job.json: steps[0].user: uid -1 is out of range 0...4294967294")
        #expect(jobError(oneStep(#"{"name": "a", "run": "x", "user": true}"#))
                == #"job.json: steps[0].user: expected a uid like 1000 or "1000:1000", got boolean"#)
    }

    @Test func environment() {
        #expect(jobError(oneStep(#"{"name": "a", "run": "x", "env": {"1X": "y"}}"#))
                == #"job.json: steps[0].env["1X"]: "1X" is not a valid environment variable name: use A-Z a-z 0-9 _, not starting with a digit"#)
        #expect(jobError(oneStep(#"{"name": "a", "run": "x", "env": {"A=B": "y"}}"#))?.hasPrefix(#"job.json: steps[0].env["A=B"]: "A=B" is not a valid"#) == true)
        #expect(jobError(oneStep(#"{"name": "a", "run": "x", "env": {"N": 1}}"#))
                == "job.json: steps[0].env.N: expected a string (quote numbers and booleans), got number")
    }

    @Test func workdir() {
        #expect(jobError(oneStep(#"{"name": "a", "run": "x", "workdir": "src"}"#))
                == #"job.json: steps[0].workdir: "src" must be an absolute path inside the container"#)
        #expect(jobError(oneStep(#"{"name": "a", "run": "x", "workdir": "/workspace/../etc"}"#))
                == #"job.json: steps[0].workdir: "/workspace/../etc" must not contain ".." components"#)
    }
}
