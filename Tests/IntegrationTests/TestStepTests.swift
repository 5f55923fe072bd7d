import Foundation
import Testing

/// Test steps (read-only containers with tmpfs), the job's JUnit report, and artifacts.
@Suite(.serialized) struct TestStepTests {
    /// A "test suite" in sh that writes a JUnit file with passing, failing and skipped cases.
    static let suiteScript = #"""
    mkdir -p /tmp/reports
    cat > /tmp/reports/TEST-shell.xml <<'XML'
    <?xml version="1.0" encoding="UTF-8"?>
    <testsuite name="shell" tests="3" failures="1" errors="0" skipped="1" time="0.3">
      <testcase classname="shell.math" name="adds" time="0.1"/>
      <testcase classname="shell.math" name="divides" time="0.1"><failure message="expected 2, got 3">trace</failure></testcase>
      <testcase classname="shell.math" name="later" time="0.1"><skipped/></testcase>
    </testsuite>
    XML
    printf 'control \001\002 chars and ]]> in output\n'
    exit 0
    """#

    func xmllintValid(_ path: String) throws -> (Bool, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/xmllint")
        p.arguments = ["--noout", "--schema", Harness.junitSchema, path]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus == 0, text)
    }

    @Test func reportsAreMergedCountedAndFailTheStep() async throws {
        let f = try JobFixture("""
        {"version": 1, "id": "suite", "workspace": "src", "steps": [
          {"name": "unit", "type": "test", "run": ["/bin/sh", "suite.sh"], "reports": ["/tmp/reports/*.xml"]}
        ]}
        """, files: ["src/suite.sh": Self.suiteScript])
        let r = try await f.run()
        #expect(r.status == 1, "\(r.stderr)")
        let step = try f.steps()[0]
        #expect(step["state"] as? String == "failed")
        let tests = step["tests"] as? [String: Any]
        #expect(tests?["tests"] as? Int == 3)
        #expect(tests?["failures"] as? Int == 1)
        #expect(tests?["skipped"] as? Int == 1)
        let junit = try f.read("junit.xml")
        #expect(junit.contains("name=\"divides\""))
        #expect(junit.contains("expected 2, got 3"))
        let (valid, why) = try xmllintValid(f.results + "/junit.xml")
        #expect(valid, "junit.xml does not validate: \(why)")
    }

    @Test func reportFailuresCanBeIgnored() async throws {
        let f = try JobFixture("""
        {"version": 1, "id": "lenient-suite", "workspace": "src", "steps": [
          {"name": "unit", "type": "test", "run": ["/bin/sh", "suite.sh"], "reports": ["/tmp/reports/*.xml"],
           "fail_on_report_failures": false}
        ]}
        """, files: ["src/suite.sh": Self.suiteScript])
        let r = try await f.run()
        #expect(r.status == 0, "\(r.stderr)")
    }

    @Test func malformedReportBecomesAnErrorCase() async throws {
        let f = try JobFixture("""
        {"version": 1, "id": "badxml", "steps": [
          {"name": "unit", "type": "test", "run": "mkdir -p /tmp/r && echo '<testsuite><testcase' > /tmp/r/bad.xml", "reports": ["/tmp/r/*.xml"]}
        ]}
        """)
        let r = try await f.run()
        #expect(r.status == 1, "\(r.stderr)")
        let junit = try f.read("junit.xml")
        #expect(junit.contains("bad.xml"))
        #expect(junit.contains("<error"))
        #expect(try xmllintValid(f.results + "/junit.xml").0)
    }

    @Test func workspaceIsReadOnlyAndTmpIsWritable() async throws {
        let f = try JobFixture("""
        {"version": 1, "id": "ro", "workspace": "src", "steps": [
          {"name": "build", "run": "echo built > out.txt"},
          {"name": "test", "type": "test",
           "run": "cat out.txt; if echo x > /workspace/new 2>/tmp/err; then echo WROTE; else cat /tmp/err; fi; echo ok > /tmp/t && cat /tmp/t"}
        ]}
        """, files: ["src/README": "source\n"])
        let r = try await f.run()
        #expect(r.status == 0, "\(r.stderr)")
        let log = try f.read("logs/02-test.log")
        #expect(log.contains("out built"))
        #expect(log.contains("Read-only file system"))
        #expect(!log.contains("WROTE"))
        #expect(log.contains("out ok"))
    }

    @Test func tmpfsSizeIsEnforced() async throws {
        let f = try JobFixture("""
        {"version": 1, "id": "small", "steps": [
          {"name": "fill", "type": "test", "tmpfs": ["/scratch:size=1m"],
           "run": "dd if=/dev/zero of=/scratch/big bs=1024 count=4096 2>&1 | head -n 1; true"}
        ]}
        """)
        let r = try await f.run()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try f.read("logs/01-fill.log").contains("No space left on device"))
    }

    @Test func overlayWorkspaceWritesVanish() async throws {
        let f = try JobFixture("""
        {"version": 1, "id": "throwaway", "workspace": "src", "steps": [
          {"name": "test", "type": "test", "workspace": "overlay", "run": "echo scratch > written.txt && cat written.txt"},
          {"name": "after", "run": "test ! -e written.txt && echo gone"}
        ]}
        """, files: ["src/README": "source\n"])
        let r = try await f.run()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try f.read("logs/01-test.log").contains("out scratch"))
        #expect(try f.read("logs/02-after.log").contains("out gone"))
    }

    @Test func artifactsWithGlobsExcludesSymlinksAndChecksums() async throws {
        let f = try JobFixture("""
        {"version": 1, "id": "arts", "workspace": "src", "steps": [
          {"name": "build", "run": "mkdir -p dist/sub && echo app > dist/app && echo map > dist/app.map && echo deep > dist/sub/deep.txt && chmod 755 dist/app && ln -s /etc/passwd dist/leak && ln -s app dist/alias"}
        ],
        "artifacts": [{"name": "dist", "paths": ["dist/**"], "exclude": ["**/*.map"]},
                      {"name": "failures-only", "paths": ["dist/**"], "when": "on_failure"}]}
        """, files: ["src/README": "x\n"])
        let r = try await f.run()
        #expect(r.status == 0, "\(r.stderr)")
        let arts = f.results + "/artifacts"
        let fm = FileManager.default
        #expect(fm.fileExists(atPath: arts + "/dist/dist/app"))
        #expect(fm.fileExists(atPath: arts + "/dist/dist/sub/deep.txt"))
        #expect(!fm.fileExists(atPath: arts + "/dist/dist/app.map"))
        // A symlink out of the workspace is never followed nor copied.
        #expect((try? fm.destinationOfSymbolicLink(atPath: arts + "/dist/dist/leak")) == nil)
        #expect(!fm.fileExists(atPath: arts + "/failures-only"))
        let attrs = try fm.attributesOfItem(atPath: arts + "/dist/dist/app")
        #expect((attrs[.posixPermissions] as? NSNumber)?.intValue == 0o755)
        // sha256sum -c agrees with the manifest.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        p.arguments = ["-c", "SHA256SUMS"]
        p.currentDirectoryURL = URL(fileURLWithPath: arts)
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let manifest = try String(contentsOfFile: arts + "/manifest.json", encoding: .utf8)
        #expect(manifest.contains("sha256"))
    }

    @Test func onFailureArtifactsOnlyOnFailure() async throws {
        let f = try JobFixture("""
        {"version": 1, "id": "arts-fail", "workspace": "src", "steps": [
          {"name": "build", "run": "mkdir -p logs && echo oops > logs/crash.txt && exit 1"}
        ],
        "artifacts": [{"name": "crash", "paths": ["logs/*"], "when": "on_failure"},
                      {"name": "dist", "paths": ["dist/*"], "when": "on_success"}]}
        """, files: ["src/README": "x\n"])
        let r = try await f.run()
        #expect(r.status == 1)
        #expect(FileManager.default.fileExists(atPath: f.results + "/artifacts/crash/logs/crash.txt"))
        #expect(!FileManager.default.fileExists(atPath: f.results + "/artifacts/dist"))
    }

    @Test func artifactBudgetIsEnforced() async throws {
        let f = try JobFixture("""
        {"version": 1, "id": "budget", "workspace": "src", "steps": [
          {"name": "build", "run": "head -c 200000 /dev/zero > big.bin"}
        ],
        "artifacts": [{"name": "big", "paths": ["big.bin"]}]}
        """, files: ["src/README": "x\n"])
        try Harness.write(#"{"artifactBudgetBytes": 100000}"#, to: f.dir + "/policy.json")
        let r = try await f.run(["--policy", f.dir + "/policy.json"])
        #expect(r.status == 1, "\(r.stderr)")
        let status = try f.status()
        let errors = (status["artifacts"] as? [String: Any])?["errors"] as? [String] ?? []
        #expect(errors.contains { $0.contains("100000") || $0.contains("budget") }, "\(errors)")
    }

    @Test func artifactPatternLeavingTheWorkspaceIsRefusedBeforeAnythingRuns() async throws {
        let f = try JobFixture("""
        {"version": 1, "id": "dotdot", "steps": [{"name": "build", "run": "true"}],
         "artifacts": [{"name": "escape", "paths": ["../secrets/*"]}]}
        """)
        let r = try await f.run()
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stderr.contains("artifacts[0].paths[0]"))
        #expect(!FileManager.default.fileExists(atPath: f.results))
    }
}
