import Foundation
import Testing

/// `agent exec` with an unwritable HOME still caches the compiled profile, in a private
/// per-user folder, and refuses a fallback folder that is not really the user's.
@Suite struct SeccompCacheFallbackIntegrationTests {
    /// HOME unwritable, XDG_CACHE_HOME unset, XDG_RUNTIME_DIR a fresh folder of the user.
    func environment(runtime: String) -> [String: String] {
        ["HOME": "/nonexistent", "XDG_RUNTIME_DIR": runtime]
    }

    func seccompLine(_ r: Harness.Result) -> String {
        r.stderr.split(separator: "\n").first { $0.hasPrefix("agent: seccomp:") }.map(String.init) ?? r.stderr
    }

    @Test func secondRunUsesTheFallbackCache() async throws {
        let runtime = try Harness.scratch("xdg-runtime")
        let env = environment(runtime: runtime)
        let first = try await Harness.exec(["--verbose"], ["true"], environment: env)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(seccompLine(first).contains("compiled, stored in the disk cache"), "\(seccompLine(first))")
        #expect(seccompLine(first).contains(runtime + "/agent-seccomp"), "\(seccompLine(first))")
        let second = try await Harness.exec(["--verbose"], ["true"], environment: env)
        #expect(second.status == 0, "\(second.stderr)")
        #expect(seccompLine(second).contains("program from the disk cache"), "\(seccompLine(second))")
        let files = try FileManager.default.contentsOfDirectory(atPath: runtime + "/agent-seccomp")
        #expect(files.contains { $0.hasSuffix(".bpf") }, "\(files)")
        var st = stat()
        #expect(lstat(runtime + "/agent-seccomp", &st) == 0 && st.st_mode & 0o777 == 0o700 && st.st_uid == Harness.user.uid)
    }

    @Test func withoutARuntimeFolderTmpIsUsed() async throws {
        let env = ["HOME": "/nonexistent"]
        _ = try await Harness.exec(["--verbose"], ["true"], environment: env)
        let r = try await Harness.exec(["--verbose"], ["true"], environment: env)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(seccompLine(r).contains("/tmp/agent-seccomp-\(Harness.user.uid)"), "\(seccompLine(r))")
        #expect(seccompLine(r).contains("program from the disk cache"), "\(seccompLine(r))")
    }

    @Test func fallbackWithWrongModeOrSymlinkIsRefused() async throws {
        // Wrong mode: a 0755 folder of the user.
        let loose = try Harness.scratch("xdg-loose")
        #expect(mkdir(loose + "/agent-seccomp", 0o755) == 0 && chmod(loose + "/agent-seccomp", 0o755) == 0)
        chown(loose + "/agent-seccomp", Harness.user.uid, Harness.user.gid)
        // A symlink to a folder that would otherwise be fine.
        let linked = try Harness.scratch("xdg-link")
        #expect(mkdir(linked + "/real", 0o700) == 0)
        chown(linked + "/real", Harness.user.uid, Harness.user.gid)
        #expect(symlink(linked + "/real", linked + "/agent-seccomp") == 0)
        var cases = [loose, linked]
        // Someone else's folder (the tests run as root in CI; the agent as the test user).
        if Harness.isRoot {
            let foreign = try Harness.scratch("xdg-foreign")
            #expect(mkdir(foreign + "/agent-seccomp", 0o700) == 0)  // owned by root
            cases.append(foreign)
        }
        for runtime in cases {
            for _ in 0..<2 {
                let r = try await Harness.exec(["--verbose"], ["true"], environment: environment(runtime: runtime))
                #expect(r.status == 0, "\(r.stderr)")
                #expect(seccompLine(r).contains("compiled, not stored") && seccompLine(r).contains("cache folder: none"),
                        "\(runtime): \(seccompLine(r))")
            }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: linked + "/real").isEmpty)
    }
}
