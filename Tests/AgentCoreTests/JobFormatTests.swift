import Foundation
import Testing
@testable import AgentCore

/// Durations, suggestions, and the agreement between the examples, the parser and the schema.
@Suite struct JobFormatTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let examples = repo + "/ci/examples"
    static let schema = repo + "/ci/schema/job.schema.json"

    static var exampleFiles: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: examples)) ?? [])
            .filter { $0.hasSuffix(".json") }.sorted()
    }

    /// True when python3 can import jsonschema (ci/test.sh installs python3-jsonschema).
    static var pythonJSONSchema: Bool {
        run(["/usr/bin/env", "python3", "-c", "import jsonschema"]).status == 0
    }

    static func run(_ argv: [String], stdin: String = "") -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: argv[0])
        p.arguments = Array(argv.dropFirst())
        let out = Pipe(), input = Pipe()
        p.standardOutput = out
        p.standardError = out
        p.standardInput = input
        do { try p.run() } catch { return (127, "\(error)") }
        input.fileHandleForWriting.write(Data(stdin.utf8))
        try? input.fileHandleForWriting.close()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test func durations() throws {
        #expect(try JobDuration.parse("90s") == .seconds(90))
        #expect(try JobDuration.parse("30m") == .seconds(1800))
        #expect(try JobDuration.parse("2h") == .seconds(7200))
        #expect(try JobDuration.parse("1h30m") == .seconds(5400))
        #expect(try JobDuration.parse("500ms") == .milliseconds(500))
        #expect(try JobDuration.parse("1m30s250ms") == .milliseconds(90_250))
        for bad in ["", "90", "s", "1.5s", "1d", "30m1h", "1s1s", " 1s", "1S", "-1s", "1h 30m"] {
            #expect(throws: JobDuration.ParseError.malformed(bad)) { try JobDuration.parse(bad) }
        }
        #expect(throws: JobDuration.ParseError.notPositive("0ms")) { try JobDuration.parse("0ms") }
        #expect(throws: JobDuration.ParseError.tooLong("721h")) { try JobDuration.parse("721h") }
        #expect(throws: JobDuration.ParseError.tooLong("99999999999999999999s")) { try JobDuration.parse("99999999999999999999s") }
        #expect(JobDuration.format(.seconds(5400)) == "1h30m")
        #expect(JobDuration.format(.milliseconds(500)) == "500ms")
        #expect(JobDuration.tenths(.milliseconds(4_149)) == "4.1s")
        #expect(JobDuration.tenths(.milliseconds(4_150)) == "4.2s")
        #expect(JobDuration.millis(.milliseconds(512)) == "0.512")
        #expect(JobDuration.millis(.seconds(62)) == "62.000")
    }

    @Test func suggestions() {
        #expect(DidYouMean.suggestion(for: "mount", among: ["name", "mounts"]) == "mounts")
        #expect(DidYouMean.suggestion(for: "Steps", among: ["steps"]) == "steps")
        #expect(DidYouMean.suggestion(for: "allow-failure", among: ["allow_failure"]) == "allow_failure")
        #expect(DidYouMean.suggestion(for: "wehn", among: ["when"]) == "when")  // transposition: one edit
        #expect(DidYouMean.suggestion(for: "xyz", among: ["env", "run"]) == nil)
        #expect(DidYouMean.suggestion(for: "id", among: ["env"]) == nil)
        #expect(DidYouMean.distance("kitten", "sitting") == 3)
        #expect(DidYouMean.distance("", "abc") == 3)
    }

    @Test func theExamplesExist() {
        #expect(Set(Self.exampleFiles).isSuperset(of: ["hello.json", "c-cache.json", "secrets.json", "tests.json", "busybox.json"]))
    }

    @Test func everyExampleParsesUnderItsFileName() throws {
        for name in Self.exampleFiles {
            let spec = try JobParser.parse(fileAt: Self.examples + "/" + name, displayName: name)
            #expect(spec.id == String(name.dropLast(5)), "examples use their file name as id")
        }
    }

    @Test func helloRunsShellOnlyAndCleansUpAlways() throws {
        let spec = try JobParser.parse(fileAt: Self.examples + "/hello.json")
        #expect(spec.steps.count == 3)
        #expect(spec.steps.last?.when == .always)
        #expect(spec.workspace == "hello-src")
    }

    @Test func examplesValidateAgainstTheSchema() throws {
        // CI installs python3-jsonschema (ci/test.sh): without it this fails, never skips.
        try #require(Self.pythonJSONSchema, "python3 cannot import jsonschema: install python3-jsonschema")
        let script = """
        import json, sys, glob, jsonschema
        schema = json.load(open(sys.argv[1]))
        jsonschema.Draft202012Validator.check_schema(schema)
        v = jsonschema.Draft202012Validator(schema)
        bad = 0
        for f in sorted(glob.glob(sys.argv[2] + "/*.json")):
            for e in v.iter_errors(json.load(open(f))):
                print(f, list(e.absolute_path), e.message); bad += 1
        # Documents both the parser and the schema must refuse.
        step = {"name": "a", "run": "x"}
        refused = [
            {"version": 2, "steps": [step]},
            {"version": 1, "steps": []},
            {"version": 1, "steps": [dict(step, mount=[])]},
            {"version": 1, "steps": [dict(step, timeout="90")]},
            {"version": 1, "steps": [dict(step, reports=["a.xml"])]},
            {"version": 1, "steps": [dict(step, type="test", tmpfs=["rel"])]},
            {"version": 1, "id": "..", "steps": [step]},
            {"version": 1, "env": {"1X": "y"}, "steps": [step]},
            {"version": 1, "artifacts": [{"name": "d", "paths": ["../x"]}], "steps": [step]},
            {"version": 1, "secrets": {"t": {"file": "a", "env": "B"}}, "steps": [step]},
            {"version": 1, "secrets": {"t": {"file": "a"}}, "steps": [step]},
            {"version": 1, "secrets": {"t": {"env": "HOME"}}, "steps": [step]},
            {"version": 1, "image": "Ubuntu", "steps": [step]},
            {"version": 1, "pull": "sometimes", "steps": [step]},
        ]
        for doc in refused:
            if v.is_valid(doc):
                print("schema accepts", json.dumps(doc)); bad += 1
        sys.exit(1 if bad else 0)
        """
        let r = Self.run(["/usr/bin/env", "python3", "-c", script, Self.schema, Self.examples])
        #expect(r.status == 0, "\(r.output)")
    }

    /// The same refused documents, through our parser.
    @Test func parserRefusesWhatTheSchemaRefuses() {
        let step = #"{"name": "a", "run": "x"}"#
        let refused = [
            #"{"version": 2, "steps": [\#(step)]}"#,
            #"{"version": 1, "steps": []}"#,
            #"{"version": 1, "steps": [{"name": "a", "run": "x", "mount": []}]}"#,
            #"{"version": 1, "steps": [{"name": "a", "run": "x", "timeout": "90"}]}"#,
            #"{"version": 1, "steps": [{"name": "a", "run": "x", "reports": ["a.xml"]}]}"#,
            #"{"version": 1, "steps": [{"name": "a", "run": "x", "type": "test", "tmpfs": ["rel"]}]}"#,
            #"{"version": 1, "id": "..", "steps": [\#(step)]}"#,
            #"{"version": 1, "env": {"1X": "y"}, "steps": [\#(step)]}"#,
            #"{"version": 1, "artifacts": [{"name": "d", "paths": ["../x"]}], "steps": [\#(step)]}"#,
            #"{"version": 1, "secrets": {"t": {"file": "a", "env": "B"}}, "steps": [\#(step)]}"#,
            #"{"version": 1, "secrets": {"t": {"file": "a"}}, "steps": [\#(step)]}"#,
            #"{"version": 1, "secrets": {"t": {"env": "HOME"}}, "steps": [\#(step)]}"#,
            #"{"version": 1, "image": "Ubuntu", "steps": [\#(step)]}"#,
            #"{"version": 1, "pull": "sometimes", "steps": [\#(step)]}"#,
        ]
        for doc in refused {
            #expect(jobError(doc) != nil, "parser accepts \(doc)")
        }
    }
}
