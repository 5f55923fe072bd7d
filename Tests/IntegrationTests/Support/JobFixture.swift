import Foundation
import Testing

/// A scratch folder with `job.json` (and optionally a workspace) owned by the test user.
struct JobFixture {
    let dir: String
    var job: String { dir + "/job.json" }
    var results: String { dir + "/results" }
    var state: String { dir + "/state" }

    init(_ json: String, files: [String: String] = [:]) throws {
        dir = try Harness.scratch("runjob")
        try Harness.write(json, to: dir + "/job.json")
        for (path, text) in files { try Harness.write(text, to: dir + "/" + path) }
    }

    func run(_ extra: [String] = [], environment: [String: String] = [:]) async throws -> Harness.Result {
        try await Harness.run(["run-job", job, "--output", results, "--state-dir", state, "--progress", "plain"] + extra,
                              environment: environment)
    }

    func status() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: results + "/status.json"))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    func steps() throws -> [[String: Any]] { try status()["steps"] as! [[String: Any]] }

    func stepStates() throws -> [String] { try steps().map { $0["state"] as! String } }

    func read(_ relative: String) throws -> String {
        try String(contentsOfFile: results + "/" + relative, encoding: .utf8)
    }
}

