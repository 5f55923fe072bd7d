import Foundation
import Testing

/// `agent cache` and `agent volume` run as the unprivileged test user. Jobs that use cache
/// mounts are tested with the job runner; these cover the store, its locks and the CLI.
@Suite struct CacheCLITests {
    /// Starts `agent <args>` (a `hold` subcommand) and returns once it printed `held`.
    func hold(_ args: [String]) async throws -> Process {
        let p = Harness.process(args)
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let line = await Task.detached { out.fileHandleForReading.availableData }.value
        #expect(String(decoding: line, as: UTF8.self).hasPrefix("held "), "hold did not start")
        return p
    }

    func stop(_ p: Process) {
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }

    @Test func killedHolderLeavesTheLockedCacheFree() async throws {
        let state = try Harness.scratch("cache-kill")
        defer { try? FileManager.default.removeItem(atPath: state) }
        let holder = try await hold(["cache", "hold", "--state-dir", state, "--sharing", "locked", "apt"])
        // While held, a second acquirer would have to wait (it reports that and gives up).
        let busy = try await Harness.run(["cache", "hold", "--state-dir", state, "--sharing", "locked", "--no-wait", "--seconds", "0", "apt"])
        #expect(busy.status == 1)
        #expect(busy.stderr.contains("waiting for locked cache \"apt\""))
        stop(holder) // SIGKILL: no clean-up code runs
        let next = try await Harness.run(["cache", "hold", "--state-dir", state, "--sharing", "locked", "--no-wait", "--seconds", "0", "apt"])
        #expect(next.status == 0, "\(next.stderr)")
        #expect(!next.stderr.contains("waiting"))
    }

    @Test func lsAndPruneRespectCachesInUse() async throws {
        let state = try Harness.scratch("cache-prune")
        defer { try? FileManager.default.removeItem(atPath: state) }
        for id in ["one", "two"] {
            let r = try await Harness.run(["cache", "hold", "--state-dir", state, "--sharing", "shared", "--seconds", "0", id])
            #expect(r.status == 0, "\(r.stderr)")
        }
        let holder = try await hold(["cache", "hold", "--state-dir", state, "--sharing", "shared", "one"])
        let ls = try await Harness.run(["cache", "ls", "--state-dir", state, "--json"])
        #expect(ls.status == 0, "\(ls.stderr)")
        let list = try JSONSerialization.jsonObject(with: ls.stdoutBytes) as? [[String: Any]] ?? []
        let inUse = Dictionary(uniqueKeysWithValues: list.map { ($0["id"] as? String ?? "", $0["inUse"] as? Bool ?? false) })
        #expect(inUse == ["one": true, "two": false])
        let prune = try await Harness.run(["cache", "prune", "--state-dir", state, "--all"])
        #expect(prune.status == 0, "\(prune.stderr)")
        #expect(prune.stdout.contains("skipped default/one: in use"))
        #expect(prune.stdout.contains("removed default/two"))
        stop(holder)
        // By age, not by bytes: "one" is empty, and an empty folder takes no blocks on tmpfs.
        let after = try await Harness.run(["cache", "prune", "--state-dir", state, "--older-than", "0s"])
        #expect(after.stdout.contains("removed default/one"))
    }

    @Test func volumeRmRefusesAVolumeInUse() async throws {
        let state = try Harness.scratch("volume")
        defer { try? FileManager.default.removeItem(atPath: state) }
        #expect(try await Harness.run(["volume", "create", "--state-dir", state, "data"]).status == 0)
        let holder = try await hold(["volume", "hold", "--state-dir", state, "data"])
        let rm = try await Harness.run(["volume", "rm", "--state-dir", state, "data"])
        #expect(rm.status == 1)
        #expect(rm.stderr.contains("volume \"data\" (scope \"default\") is in use"), "\(rm.stderr)")
        stop(holder)
        #expect(try await Harness.run(["volume", "rm", "--state-dir", state, "data"]).status == 0)
        let ls = try await Harness.run(["volume", "ls", "--state-dir", state])
        #expect(!ls.stdout.contains("data"))
    }

    /// Volumes live in cache scopes; `--scope` picks one (default `default`).
    @Test func volumeCommandsTakeAScope() async throws {
        let state = try Harness.scratch("volume-scope")
        defer { try? FileManager.default.removeItem(atPath: state) }
        #expect(try await Harness.run(["volume", "create", "--state-dir", state, "--scope", "forks", "deps"]).status == 0)
        #expect(try await Harness.run(["volume", "create", "--state-dir", state, "tools"]).status == 0)
        let forks = try await Harness.run(["volume", "ls", "--state-dir", state, "--scope", "forks"])
        #expect(forks.status == 0 && forks.stdout.contains("forks\tdeps") && !forks.stdout.contains("tools"), "\(forks.stdout)")
        let trusted = try await Harness.run(["volume", "ls", "--state-dir", state, "--scope", "default"])
        #expect(trusted.stdout.contains("default\ttools") && !trusted.stdout.contains("deps"), "\(trusted.stdout)")
        let wrongScope = try await Harness.run(["volume", "rm", "--state-dir", state, "deps"])
        #expect(wrongScope.status == 2 && wrongScope.stderr.contains(#"no volume "deps" in scope "default""#), "\(wrongScope.stderr)")
        #expect(try await Harness.run(["volume", "rm", "--state-dir", state, "--scope", "forks", "deps"]).status == 0)
        let pruned = try await Harness.run(["volume", "prune", "--state-dir", state, "--scope", "default"])
        #expect(pruned.stdout.contains("removed default/tools"), "\(pruned.stdout)")
    }

    @Test func badInputExitsTwo() async throws {
        let state = try Harness.scratch("cache-usage")
        defer { try? FileManager.default.removeItem(atPath: state) }
        let cases: [[String]] = [
            ["volume", "create", "--state-dir", state, "../x"],
            ["volume", "create", "--state-dir", state, "--scope", "../x", "ok"],
            ["volume", "ls", "--state-dir", state, "--scope", "a/b"],
            ["cache", "prune", "--state-dir", state, "--keep-bytes", "lots"],
            ["cache", "prune", "--state-dir", state, "--older-than", "soon"],
            ["cache", "export", "--state-dir", state, "nope", "-o", state + "/x.tar"],
            ["cache", "export", "--state-dir", state, "nope", "-o", state + "/x.zip"],
            ["cache", "ls", "--state-dir", state, "--scope", "a/b"],
        ]
        for args in cases {
            let r = try await Harness.run(args)
            #expect(r.status == 2, "\(args): \(r.status) \(r.stderr)")
            #expect(!r.stderr.isEmpty)
        }
    }

    @Test func exportThenImportIntoAFreshStateFolder() async throws {
        let a = try Harness.scratch("cache-export"), b = try Harness.scratch("cache-import")
        defer { for d in [a, b] { try? FileManager.default.removeItem(atPath: d) } }
        let r = try await Harness.run(["cache", "hold", "--state-dir", a, "--scope", "ci", "--sharing", "shared", "--seconds", "0", "ccache"])
        #expect(r.status == 0, "\(r.stderr)")
        let data = r.stdout.replacingOccurrences(of: "held ", with: "").trimmingCharacters(in: .whitespacesAndNewlines)
        try Harness.write("warm\n", to: data + "/sub/obj.o")
        let archive = a + "/ccache.tar.zst"
        let ex = try await Harness.run(["cache", "export", "--state-dir", a, "--scope", "ci", "ccache", "-o", archive])
        #expect(ex.status == 0, "\(ex.stderr)")
        let im = try await Harness.run(["cache", "import", "--state-dir", b, "--scope", "ci", "ccache", archive])
        #expect(im.status == 0, "\(im.stderr)")
        let again = try await Harness.run(["cache", "hold", "--state-dir", b, "--scope", "ci", "--sharing", "shared", "--seconds", "0", "ccache"])
        let imported = again.stdout.replacingOccurrences(of: "held ", with: "").trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try String(contentsOfFile: imported + "/sub/obj.o", encoding: .utf8) == "warm\n")
        // A corrupt archive is refused (exit 2) and the imported cache stays as it was.
        let bad = b + "/bad.tar.zst"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: archive))
        try Harness.write(String(decoding: bytes.prefix(bytes.count / 2), as: UTF8.self), to: bad)
        let corrupt = try await Harness.run(["cache", "import", "--state-dir", b, "--scope", "ci", "ccache", bad])
        #expect(corrupt.status == 2, "\(corrupt.stderr)")
        #expect(try String(contentsOfFile: imported + "/sub/obj.o", encoding: .utf8) == "warm\n")
    }
}
