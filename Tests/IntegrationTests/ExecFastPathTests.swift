import Foundation
import Testing

/// `agent exec` in its plain form (`--flag value`... `--` CMD) is parsed without
/// swift-argument-parser (start-up time); every other form goes through the parser. Both
/// must mean the same: the same container for the same flags, and the parser's usage errors
/// (exit 64) for anything the fast path does not take.
@Suite struct ExecFastPathTests {
    static let script = "id -u; echo \"$A $B\"; hostname; pwd; cat /proc/self/status | grep -c CapEff; ls /w /t"

    /// The same flags in the fast form and in forms only the parser takes (no `--`, which
    /// the fast path leaves to the parser) give the same output, mount order included.
    @Test func fastAndParsedFormsRunTheSameContainer() async throws {
        let dir = try Harness.scratch("fast")
        try Harness.write("x", to: dir + "/f")
        let flags = SandboxFixture.busybox + ["--env", "A=1", "--env=B=2", "--hostname", "h1", "--workdir=/tmp",
                                              "--tmpfs", "/w", "--bind", "\(dir):/w/sub:ro", "--tmpfs=/t", "--id-map", "single"]
        let fast = try await Harness.run(["exec"] + flags + ["--", "sh", "-c", Self.script])
        // Without `--` the parser takes the command line (its passthrough capture).
        let parsed = try await Harness.run(["exec"] + flags + ["sh", "-c", Self.script])
        #expect(fast.status == 0, "\(fast.stderr)")
        #expect(parsed.status == 0, "\(parsed.stderr)")
        #expect(fast.stdout == parsed.stdout, "fast: \(fast.stdout)\nparsed: \(parsed.stdout)")
        #expect(fast.stdout.hasPrefix("0\n1 2\nh1\n/tmp\n1\n"), "\(fast.stdout)")
        #expect(fast.stdout.contains("sub"), "\(fast.stdout)")
    }

    /// Usage errors are the parser's, whichever form: exit 64 naming the flag.
    @Test func badFlagsAreTheParsersUsageErrors() async throws {
        for (args, needle) in [(["--id-map", "bogus"], "--id-map must be auto, single or subordinate"),
                               (["--bogus"], "--bogus"),
                               (["--env", "novalue"], "--env must be K=V"),
                               (["--verbose=yes"], "verbose"),
                               (["--rootfs"], "rootfs")] {
            let r = try await Harness.run(["exec"] + SandboxFixture.busybox + args + ["--", "true"])
            #expect(r.status == 64, "\(args): \(r.status) \(r.stderr)")
            #expect(r.stderr.contains(needle), "\(args): \(r.stderr)")
        }
        // Help is the parser's too (`agent exec --help` is, as before, a usage error:
        // the command's passthrough capture takes it).
        let help = try await Harness.run(["help", "exec"])
        #expect(help.status == 0 && help.stdout.contains("--id-map"), "\(help.stdout) \(help.stderr)")
    }

    /// Refusals by the policy are agent errors (125) in the fast form too.
    @Test func policyRefusalIsAnAgentError() async throws {
        let r = try await Harness.exec(["--rootfs", Harness.busyboxRootfs, "--cap-add", "SYS_MODULE"], ["true"])
        #expect(r.status == 125, "\(r.stderr)")
        #expect(r.stderr.contains("CAP_SYS_MODULE"), "\(r.stderr)")
    }
}
