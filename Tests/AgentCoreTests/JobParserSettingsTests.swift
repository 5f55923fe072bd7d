import Foundation
import Testing
@testable import AgentCore

/// Job-level settings: image, workspace, resources, cache, secrets, artifacts; test-step keys.
@Suite struct JobParserSettingsTests {
    let step = #"{"name": "a", "run": "x"}"#

    @Test func images() {
        #expect(jobError(oneStep(step, job: #""image": "Ubuntu:24.04","#))
                == #"job.json: image: "Ubuntu:24.04" is not a valid image reference: "Ubuntu" is not a valid repository name component (lowercase letters and digits, separated by '.', '_', '__' or '-')"#)
        #expect(jobError(oneStep(step, job: #""pull": "sometimes","#))?
                    .hasPrefix(#"job.json: pull: "sometimes" is not one of "if-not-present", "always", "never""#) == true)
        #expect(jobError(oneStep(step, job: #""image": {"root": "/x"},"#))
                == #"job.json: image: unknown key "root" (did you mean "rootfs"?)"#)
        #expect(jobError(oneStep(step, job: #""image": {},"#)) == #"job.json: image: missing required key "rootfs""#)
        #expect(jobError(oneStep(step, job: #""image": 3,"#))
                == #"job.json: image: expected "host", an image reference or {"rootfs": "PATH"}, got number"#)
    }

    @Test func workspaceIsKeptAsWrittenForAdmission() throws {
        // The parser touches no file: a missing folder is the admission step's to report.
        #expect(try parseJob(oneStep(step, job: #""workspace": "missing","#)).workspace == "missing")
        #expect(try parseJob(oneStep(step, job: #""workspace": "/abs/../x","#)).workspace == "/abs/../x")
    }

    @Test func resources() throws {
        #expect(jobError(oneStep(step, job: #""resources": {"pids": 0},"#)) == "job.json: resources.pids: must be greater than zero, got 0")
        #expect(jobError(oneStep(step, job: #""resources": {"nofile": 1.5},"#)) == "job.json: resources.nofile: expected a positive whole number, got 1.5")
        #expect(jobError(oneStep(step, job: #""resources": {"memory": "lots"},"#))
                == #"job.json: resources.memory: "lots" is not a size: use bytes or a number with k, m, g or t, like "512m" or "2g""#)
        #expect(try parseJob(oneStep(step, job: #""resources": {"memory": "2g"},"#)).resources.memory == 2 << 30)
        #expect(try parseJob(oneStep(step, job: #""resources": {"memory": 4096},"#)).resources.memory == 4096)
        #expect(JobByteSize.parse("512m") == 512 << 20)
        #expect(JobByteSize.parse("1KiB") == 1024)
        #expect(JobByteSize.parse("12") == 12)
        #expect(JobByteSize.parse("1.5g") == nil)
        #expect(JobByteSize.parse("99999999999t") == nil)
    }

    @Test func cacheScope() {
        #expect(jobError(oneStep(step, job: #""cache": {"scope": "a/b"},"#))
                == #"job.json: cache.scope: "a/b" is not a valid cache scope: use 1 to 128 characters from A-Z a-z 0-9 . _ - (not "." or "..")"#)
        #expect(jobError(oneStep(step, job: #""cache": {"scop": "x"},"#)) == #"job.json: cache: unknown key "scop" (did you mean "scope"?)"#)
        #expect(jobError(oneStep(step, job: #""cache": "x","#)) == #"job.json: cache: expected an object like {"scope": "NAME"}, got string"#)
        // Parsing only records what the job asks for; the scope is the operator's grant.
        let spec = try? parseJob(oneStep(step, job: #""cache": {"scope": "default"},"#))
        #expect(spec?.requestedCacheScope == "default" && spec?.cacheScope == "default")
        #expect((try? parseJob(oneStep(step, job: #""cache": {"scope": "trusted"},"#)))?.cacheScope == "default")
    }

    /// Hostile: the job file is untrusted, so it may not say where a secret comes from.
    @Test func jobSecretFileSourceIsRefusedNamingThePath() {
        #expect(jobError(oneStep(step, job: #""secrets": {"k": {"file": "/home/agent/.ssh/id_rsa"}},"#))
                == #"job.json: secrets.k.file: a job cannot choose where a secret comes from; the operator provides it (--secret id=k,src=FILE on run-job/watch, or "secrets" in the agent policy)"#)
    }

    @Test func jobSecretEnvSourceIsRefusedNamingThePath() {
        #expect(jobError(oneStep(step, job: #""secrets": {"k": {"env": "AWS_SECRET_ACCESS_KEY", "required": true}},"#))
                == #"job.json: secrets.k.env: a job cannot choose where a secret comes from; the operator provides it (--secret id=k,env=VAR on run-job/watch, or "secrets" in the agent policy)"#)
        #expect(jobError(oneStep(step, job: #""secrets": {"tok": {"file": "a", "env": "B"}},"#))?.hasPrefix("job.json: secrets.tok.file: a job cannot choose") == true)
    }

    @Test func secrets() throws {
        #expect(jobError(oneStep(step, job: #""secrets": {"tok": {"src": "x"}},"#)) == #"job.json: secrets.tok: unknown key "src""#)
        #expect(jobError(oneStep(step, job: #""secrets": {"tok": {"required": "yes"}},"#))
                == "job.json: secrets.tok.required: expected true or false, got string")
        #expect(jobError(oneStep(step, job: #""secrets": {"a b": {}},"#))?.hasPrefix(#"job.json: secrets["a b"]: "a b" is not a valid secret id"#) == true)
        // The job names ids and whether each is required; values come from the operator.
        let spec = try parseJob(oneStep(step, job: #""secrets": {"tok": {"required": true}, "opt": {}},"#))
        #expect(spec.secrets == ["tok": SecretSpec(required: true), "opt": SecretSpec()])
    }

    @Test func artifacts() {
        func rule(_ r: String) -> String { oneStep(step, job: #""artifacts": [\#(r)],"#) }
        #expect(jobError(rule(#"{"name": "dist", "paths": ["/etc/passwd"]}"#))
                == #"job.json: artifacts[0].paths[0]: "/etc/passwd" is absolute: artifact globs are relative to the workspace"#)
        #expect(jobError(rule(#"{"name": "dist", "paths": ["out/../../x"]}"#))
                == #"job.json: artifacts[0].paths[0]: "out/../../x" leaves the workspace: ".." components are not allowed"#)
        #expect(jobError(rule(#"{"name": "dist", "paths": ["a"], "exclude": [".."]}"#))
                == #"job.json: artifacts[0].exclude[0]: ".." leaves the workspace: ".." components are not allowed"#)
        #expect(jobError(rule(#"{"name": "dist", "paths": []}"#)) == "job.json: artifacts[0].paths: must contain at least one glob")
        #expect(jobError(rule(#"{"name": "dist"}"#)) == #"job.json: artifacts[0]: missing required key "paths""#)
        #expect(jobError(rule(#"{"name": "dist", "paths": ["a"]}, {"name": "dist", "paths": ["b"]}"#))
                == #"job.json: artifacts[1].name: duplicate artifact name "dist" (also artifacts[0])"#)
        #expect(jobError(rule(#"{"name": "dist", "paths": ["a"], "when": "never"}"#))
                == #"job.json: artifacts[0].when: "never" is not one of "on_success", "on_failure", "always""#)
        #expect(jobError(rule(#"{"name": "dist", "path": ["a"]}"#)) == #"job.json: artifacts[0]: unknown key "path" (did you mean "paths"?)"#)
    }

    @Test func testOnlyKeysAreRefusedOnBuildSteps() {
        #expect(jobError(oneStep(#"{"name": "a", "run": "x", "reports": ["*.xml"]}"#))
                == #"job.json: steps[0]: "reports" is only allowed on test steps (add "type": "test")"#)
        #expect(jobError(oneStep(#"{"name": "a", "run": "x", "type": "build", "workspace": "overlay"}"#))
                == #"job.json: steps[0]: "workspace" is only allowed on test steps (add "type": "test")"#)
        #expect(jobError(oneStep(#"{"name": "a", "run": "x", "type": "test", "workspace": "rw"}"#))
                == #"job.json: steps[0].workspace: "rw" is not one of "readonly", "overlay""#)
        #expect(jobError(oneStep(#"{"name": "a", "run": "x", "type": "test", "reports": ["../x.xml"]}"#))
                == #"job.json: steps[0].reports[0]: "../x.xml" must not contain ".." components"#)
    }

    @Test func testStepTmpfs() {
        func tmpfs(_ t: String) -> String? { jobError(oneStep(#"{"name": "a", "run": "x", "type": "test", "tmpfs": [\#(t)]}"#)) }
        #expect(tmpfs(#""cache""#) == #"job.json: steps[0].tmpfs[0]: "cache" must be an absolute path inside the container"#)
        #expect(tmpfs(#""/c:size=big""#)
                == #"job.json: steps[0].tmpfs[0]: tmpfs option size: "big" is not a size: use bytes or a number with k, m, g or t, like "512m" or "2g""#)
        #expect(tmpfs(#""/c:sise=1m""#)
                == #"job.json: steps[0].tmpfs[0]: unknown tmpfs option "sise=1m": use size=N or mode=OCTAL (did you mean "size"?)"#)
        #expect(tmpfs(#""/c:mode=999""#) == #"job.json: steps[0].tmpfs[0]: tmpfs option mode: "999" is not an octal mode like 1777"#)
        #expect(tmpfs(#""/c", "/c:size=1m""#) == #"job.json: steps[0].tmpfs[1]: tmpfs "/c" is listed twice"#)
        #expect(tmpfs("1") == "job.json: steps[0].tmpfs[0]: expected a tmpfs like \"/workspace/.cache:size=16m\", got number")
    }

    @Test func mountsOfTheWrongTypeNameTheEntry() {
        #expect(jobError(oneStep(#"{"name": "a", "run": "x", "mounts": [7]}"#))
                == #"job.json: steps[0].mounts[0]: expected a mount string like "type=cache,target=/root/.cache" or a mount object, got number"#)
        #expect(jobError(oneStep(#"{"name": "a", "run": "x", "mounts": "type=tmpfs,target=/t"}"#))
                == "job.json: steps[0].mounts: expected an array of mounts, got string")
    }

    /// Errors from `MountSpec.parse` get the job file's name added.
    @Test func mountParserErrorsNameTheFile() {
        let text = jobError(oneStep(#"{"name": "a", "run": "x", "mounts": ["type=nonsense,target=/t"]}"#))
        #expect(text?.hasPrefix("job.json: steps[0].mounts[0]") == true, "\(text ?? "nil")")
    }

    @Test func firstErrorOnlyInDocumentOrder() {
        // Both the job timeout and steps[0] are wrong: the job-level key comes first.
        #expect(jobError(#"{"version": 1, "timeout": "x", "steps": [{"name": "a"}]}"#)?.hasPrefix("job.json: timeout:") == true)
        // Two unknown keys: the alphabetically first is reported.
        #expect(jobError(#"{"version": 1, "zzz": 1, "aaa": 2, "steps": []}"#) == #"job.json: unknown key "aaa""#)
    }
}
