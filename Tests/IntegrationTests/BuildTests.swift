import Foundation
import Testing

/// `agent build` end to end, as the unprivileged test user, on the loopback registry
/// ci/test.sh starts (`$AGENT_TEST_REGISTRY/busybox:1` stands in for alpine, a shell
/// command for `apk`).
@Suite(.serialized) struct BuildTests {
    static let secretValue = "s3cr3t-Build-Value-7f3a9c"

    /// A context folder, a state folder and a secret file of the test's own.
    struct Fixture {
        let dir: String
        let context: String
        let state: String
        let secretFile: String

        init(_ dockerfile: String, files: [String: String] = [:]) throws {
            dir = try Harness.scratch("build")
            context = dir + "/ctx"
            state = dir + "/state"
            secretFile = dir + "/mysecret.txt"
            try Harness.write(dockerfile, to: context + "/Dockerfile")
            for (name, text) in files { try Harness.write(text, to: context + "/" + name) }
            try Harness.write(BuildTests.secretValue, to: secretFile)
            try BuildTests.sh("chown -R \(Harness.user.uid):\(Harness.user.gid) \(dir)")
        }

        func build(_ extra: [String] = [], environment: [String: String] = [:]) async throws -> Harness.Result {
            try await Harness.run(["build", "--state-dir", state, "--policy", ImageTests.policy, "--progress", "plain"]
                                  + extra + [context], environment: environment)
        }
    }

    /// `sh -ec script`, waited for with waitpid (system(3)), not Foundation's Process:
    /// these run on the cooperative pool, and Process delivers a child's exit through a
    /// pool thread too, which a busy pool (two threads here) may never give it.
    static func sh(_ script: String) throws {
        let quoted = "'" + script.replacingOccurrences(of: "'", with: "'\\''") + "'"
        let rc = system("/bin/sh -ec " + quoted)
        #expect(rc == 0, "\(script)")
    }

    /// What `sh -c script` prints on stdout and stderr (popen(3), for the same reason).
    static func output(_ script: String) throws -> String {
        let quoted = "'" + script.replacingOccurrences(of: "'", with: "'\\''") + "'"
        guard let f = popen("/bin/sh -c " + quoted + " 2>&1", "r") else { return "" }
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        pclose(f)
        return String(decoding: out, as: UTF8.self)
    }

    static var base: String { ImageTests.ref("busybox") }

    /// Whether progress shows `text` as a line of a RUN's output (`#4 0.012 text`), not
    /// only in an instruction's name.
    static func printed(_ stderr: String, _ text: String) -> Bool {
        stderr.split(separator: "\n").contains { $0.hasPrefix("#") && $0.hasSuffix(" " + text) && !$0.contains("] RUN") }
    }

    /// The issue's Dockerfile: a secret mount and a cache mount on a base image.
    static var issueDockerfile: String {
        """
        # syntax=docker/dockerfile:experimental
        FROM \(base) AS builder
        RUN --mount=type=secret,id=mysecret \\
            --mount=type=cache,target=/tmp/cache \\
            sh -c 'test "$(cat /run/secrets/mysecret)" = "\(secretValue)" && echo "token: $(cat /run/secrets/mysecret)" && mkdir -p /usr/local/bin && echo "#!/bin/sh" > /usr/local/bin/curl && chmod 755 /usr/local/bin/curl && n=$(cat /tmp/cache/count 2>/dev/null || echo 0) && echo $((n+1)) > /tmp/cache/count && echo "cache count $((n+1))"'
        """
    }

    @Test func theIssueDockerfileBuildsWithSecretAndCacheMountsAndTheSecretIsNowhere() async throws {
        let f = try Fixture(Self.issueDockerfile)
        let oci = f.dir + "/out.tar"
        let r = try await f.build(["--secret", "id=mysecret,src=\(f.secretFile)", "-t", "localhost/issue:1",
                                   "--output", "type=oci,dest=\(oci)"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("[builder 2/2] RUN --mount=type=secret"), "\(r.stderr)")
        #expect(r.stderr.contains("cache count 1"), "\(r.stderr)")
        #expect(r.stderr.contains("token: ***"), "\(r.stderr)")
        #expect(!r.stderr.contains(Self.secretValue) && !r.stdout.contains(Self.secretValue))
        #expect(r.stdout.hasPrefix("sha256:"))
        // Every byte of every layer (decompressed), the config and the history: no secret.
        let unpacked = f.dir + "/unpacked"
        try Self.sh("mkdir -p \(unpacked) && tar -xf \(oci) -C \(unpacked) && cd \(unpacked)/blobs/sha256 && for b in *; do (gzip -dc $b 2>/dev/null || cat $b) > ../../$b.raw; done")
        let hits = try Self.output("grep -l -a -F '\(Self.secretValue)' \(unpacked)/*.raw \(unpacked)/index.json || true")
        #expect(hits.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "secret found in \(hits)")
        // The layer has the RUN's file and no secret mount point.
        let files = try Self.output("for l in \(unpacked)/*.raw; do tar -tf $l 2>/dev/null; done")
        #expect(files.contains("usr/local/bin/curl"), "\(files)")
        #expect(!files.contains("run/secrets/mysecret"), "\(files)")
        // skopeo reads the OCI archive; umoci unpacks it.
        let inspect = try Self.output("skopeo inspect oci-archive:\(oci)")
        #expect(inspect.contains("\"Layers\""), "\(inspect)")
        let umoci = try Self.output("cd \(f.dir) && skopeo copy -q oci-archive:\(oci) oci:layout:latest && umoci unpack --rootless --image layout:latest bundle && ls bundle/rootfs/usr/local/bin")
        #expect(umoci.contains("curl"), "\(umoci)")

        // Unchanged: nothing runs; the cache mount kept its count.
        let again = try await f.build(["--secret", "id=mysecret,src=\(f.secretFile)", "-t", "localhost/issue:1"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stderr.contains("CACHED") && !Self.printed(again.stderr, "cache count 2"), "\(again.stderr)")
        let noCache = try await f.build(["--secret", "id=mysecret,src=\(f.secretFile)", "--no-cache"])
        #expect(noCache.status == 0 && noCache.stderr.contains("cache count 2"), "\(noCache.stderr)")
        // The built image runs in a job.
        let job = try JobFixture("""
        {"version": 1, "id": "built", "image": "localhost/issue:1", "pull": "never", "steps": [
          {"name": "look", "run": "test -x /usr/local/bin/curl && echo has-curl"}
        ]}
        """)
        let run = try await Harness.run(["run-job", job.job, "--output", job.results, "--state-dir", f.state,
                                         "--progress", "plain", "--policy", ImageTests.policy])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try job.read("logs/01-look.log").contains("has-curl"))
    }

    @Test func multiStageCopyFromTargetDockerignoreAndHeredocs() async throws {
        let f = try Fixture("""
        ARG GREETING=hello
        FROM \(Self.base) AS builder
        ARG GREETING
        WORKDIR /src
        COPY . .
        RUN <<EOF
        set -e
        mkdir -p /out
        echo "$GREETING from $(cat input.txt)" > /out/result
        ls /src > /out/listing
        EOF
        FROM \(Self.base) AS unused
        RUN echo never-runs && exit 1

        FROM \(Self.base)
        COPY --from=builder /out/ /app/
        COPY <<EOF /app/config
        name=demo
        EOF
        ENV MODE=prod
        CMD ["cat", "/app/result"]
        """, files: ["input.txt": "the context\n", "secret.key": "ignored\n", ".dockerignore": "*.key\n"])
        let r = try await f.build(["-t", "localhost/multi:1", "--build-arg", "GREETING=hi"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!Self.printed(r.stderr, "never-runs"), "\(r.stderr)")
        let rootfs = f.dir + "/rootfs"
        let local = try await f.build(["--build-arg", "GREETING=hi", "--output", "type=local,dest=\(rootfs)"])
        #expect(local.status == 0, "\(local.stderr)")
        #expect((try? String(contentsOfFile: rootfs + "/app/result", encoding: .utf8)) == "hi from the context\n")
        let listing = (try? String(contentsOfFile: rootfs + "/app/listing", encoding: .utf8)) ?? ""
        #expect(listing.contains("input.txt") && !listing.contains("secret.key"), "\(listing)")
        #expect((try? String(contentsOfFile: rootfs + "/app/config", encoding: .utf8)) == "name=demo\n")
        // --target builds the named stage only.
        let t = try await f.build(["--target", "builder", "-t", "localhost/multi:builder"])
        #expect(t.status == 0 && !t.stderr.contains("COPY --from"), "\(t.stderr)")
    }

    /// As BuildKit: `COPY --from` may name a stage defined later in the file (that stage runs
    /// first); `FROM` may not (a later name there is an image reference).
    @Test func copyFromAStageDefinedLaterRunsThatStageFirst() async throws {
        let f = try Fixture("""
        FROM \(Self.base)
        COPY --from=maker /made /made
        RUN cat /made
        FROM \(Self.base) AS maker
        RUN echo made-by-a-later-stage > /made
        """)
        let rootfs = f.dir + "/rootfs"
        let r = try await f.build(["--target", "0", "--output", "type=local,dest=\(rootfs)"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect((try? String(contentsOfFile: rootfs + "/made", encoding: .utf8)) == "made-by-a-later-stage\n")
    }

    @Test func oneChangedFileRerunsOnlyWhatDependsOnItAndSourceDateEpochIsReproducible() async throws {
        let f = try Fixture("""
        FROM \(Self.base)
        RUN echo first-run && echo 1 > /first
        COPY a.txt /a.txt
        RUN echo second-run && cat /a.txt > /second
        """, files: ["a.txt": "one\n"])
        let env = ["SOURCE_DATE_EPOCH": "1700000000"]
        let r1 = try await f.build([], environment: env)
        #expect(r1.status == 0 && Self.printed(r1.stderr, "first-run") && Self.printed(r1.stderr, "second-run"), "\(r1.stderr)")
        let r2 = try await f.build([], environment: env)
        #expect(r2.status == 0, "\(r2.stderr)")
        #expect(!Self.printed(r2.stderr, "first-run") && !Self.printed(r2.stderr, "second-run") && r2.stderr.contains("CACHED"), "\(r2.stderr)")
        #expect(r1.stdout == r2.stdout, "same SOURCE_DATE_EPOCH, same image digest")
        let again = try await f.build(["--no-cache"], environment: env)
        #expect(again.stdout == r1.stdout, "rebuilt from scratch with the same epoch: \(again.stderr)")
        try Harness.write("two\n", to: f.context + "/a.txt")
        let r3 = try await f.build([], environment: env)
        #expect(r3.status == 0, "\(r3.stderr)")
        #expect(!Self.printed(r3.stderr, "first-run") && Self.printed(r3.stderr, "second-run"), "\(r3.stderr)")
        #expect(r3.stdout != r1.stdout)
        // A touched file with the same contents is still a hit (mtime is not in the key).
        try Self.sh("touch -d '2001-01-01' \(f.context)/a.txt")
        let r4 = try await f.build([], environment: env)
        #expect(r4.stdout == r3.stdout && !Self.printed(r4.stderr, "second-run"), "\(r4.stderr)")
    }

    @Test func onbuildTriggersRunWhenALaterBuildStartsFromTheImage() async throws {
        let parent = try Fixture("""
        FROM \(Self.base)
        ONBUILD COPY marker.txt /from-child-context
        ONBUILD RUN echo triggered > /onbuild-ran
        """)
        let p = try await parent.build(["-t", "localhost/onbuild-parent:1"])
        #expect(p.status == 0, "\(p.stderr)")
        let child = try Fixture("FROM localhost/onbuild-parent:1\nRUN cat /onbuild-ran /from-child-context\n",
                                files: ["marker.txt": "child context\n"])
        // The child uses the parent's state folder (the parent image is in its store).
        let r = try await Harness.run(["build", "--state-dir", parent.state, "--policy", ImageTests.policy, "--progress", "plain",
                                       child.context])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("ONBUILD 1: COPY marker.txt") && Self.printed(r.stderr, "triggered")
                && Self.printed(r.stderr, "child context"), "\(r.stderr)")
    }

    @Test func independentStagesRunInParallel() async throws {
        let f = try Fixture("""
        FROM \(Self.base) AS a
        RUN echo a-start && sleep 2 && echo a > /a
        FROM \(Self.base) AS b
        RUN echo b-start && sleep 2 && echo b > /b
        FROM \(Self.base)
        COPY --from=a /a /a
        COPY --from=b /b /b
        """)
        let r = try await f.build(["--progress", "json"])
        #expect(r.status == 0, "\(r.stderr)")
        // Both RUNs start before either is done.
        let lines = r.stderr.split(separator: "\n").map(String.init)
        let starts = lines.indices.filter { lines[$0].contains("-start\"") }
        let firstDone = lines.firstIndex { $0.contains("\"event\":\"done\"") && $0.contains("] RUN echo") }
        #expect(starts.count == 2 && firstDone != nil && starts.allSatisfy { $0 < firstDone! }, "\(r.stderr)")
    }

    /// `agent image prune` while a build runs: the layers and snapshots the build has made
    /// are referenced by no tagged image yet, so only the build's content lease keeps them
    /// (`ContentLease`). Without it a prune took the first RUN's layer and snapshot, and the
    /// build failed at its next step or at the commit.
    @Test func aPruneDuringABuildTakesNothingTheBuildMade() async throws {
        let f = try Fixture("""
        FROM \(Self.base)
        RUN echo one > /one
        RUN sleep 3
        RUN cat /one > /two
        """)
        final class Stop: @unchecked Sendable { var stop = false; let lock = NSLock() }
        let flag = Stop()
        let state = f.state
        let pruner = Task.detached { () -> [String] in
            var outputs: [String] = []
            while !flag.lock.withLock({ flag.stop }) {
                if let r = try? await Harness.run(["image", "prune", "--state-dir", state, "--policy", ImageTests.policy]) {
                    outputs.append("\(r.status) \(r.stdout)\(r.stderr)")
                }
                try? await Task.sleep(for: .milliseconds(200))
            }
            return outputs
        }
        let r = try await f.build(["-t", "localhost/pruned:1"])
        flag.lock.withLock { flag.stop = true }
        let prunes = await pruner.value
        #expect(r.status == 0, "\(r.stderr)")
        #expect(prunes.count >= 3 && prunes.allSatisfy { $0.hasPrefix("0 ") }, "\(prunes)")
        let run = try await Harness.exec(["--state-dir", state, "--policy", ImageTests.policy, "--image", "localhost/pruned:1"],
                                         ["cat", "/two"])
        #expect(run.status == 0 && run.stdout == "one\n", "\(run.stdout)\(run.stderr)")
        // The build's lease is gone with it: a prune now keeps only what the tag references.
        let after = try await Harness.run(["image", "prune", "--state-dir", state, "--policy", ImageTests.policy])
        #expect(after.status == 0, "\(after.stderr)")
        #expect(!FileManager.default.fileExists(atPath: state + "/images/locks") ||
                ((try? FileManager.default.contentsOfDirectory(atPath: state + "/images/locks")) ?? []).allSatisfy { !$0.hasPrefix("lease-") })
    }

    @Test func runNetworkDefaultIsTheOutboundStackWhenThePolicyAllowsIt() async throws {
        let f = try Fixture("""
        FROM \(Self.base)
        RUN --network=default sed -n 's/^nameserver /dns /p' /etc/resolv.conf
        """)
        let policy = f.dir + "/outbound.json"
        try Harness.write(#"{"allowOutboundNetwork": true, "images": {"allowedRegistries": ["127.0.0.1"]}}"#, to: policy)
        let r = try await Harness.run(["build", "--state-dir", f.state, "--policy", policy, "--progress", "plain", f.context])
        #expect(r.status == 0, "\(r.stderr)")
        // slirp4netns's resolver: the RUN had the fenced outbound stack, not the host's namespace.
        #expect(Self.printed(r.stderr, "dns 10.0.2.3"), "\(r.stderr)")
        let host = try Fixture("FROM \(Self.base)\nRUN --network=host true")
        let refused = try await Harness.run(["build", "--state-dir", host.state, "--policy", policy, "--progress", "plain", host.context])
        #expect(refused.status == 2 && refused.stderr.contains("Dockerfile:2") && refused.stderr.contains("allowHostNetwork"), "\(refused.stderr)")
    }

    @Test func aFailingRunExitsOneNamingTheLine() async throws {
        let f = try Fixture("""
        FROM \(Self.base)

        RUN echo before
        RUN exit 3
        """)
        let r = try await f.build()
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.stderr.contains("Dockerfile:4: RUN exit 3: exit code 3"), "\(r.stderr)")
    }

    @Test(arguments: [
        ("FROM \(BuildTests.base)\nRUNN echo", "Dockerfile:2", "RUNN"),
        ("FROM \(BuildTests.base)\nCOPY ../outside /x", "Dockerfile:2", "\"../outside\" is outside the build context"),
        ("FROM \(BuildTests.base)\nCOPY link/passwd /x", "Dockerfile:2", "leads out of the build context"),
        ("FROM \(BuildTests.base)\nCOPY missing.txt /x", "Dockerfile:2", "missing.txt"),
        ("FROM 10.1.2.3:5000/evil:1\nRUN true", "Dockerfile:1", "allowedRegistries"),
        ("FROM \(BuildTests.base)\nRUN --network=default true", "Dockerfile:2", "allowHostNetwork"),
        ("FROM \(BuildTests.base)\nRUN --mount=type=secret,id=nope,required=true true", "Dockerfile:2", "nope"),
        ("FROM \(BuildTests.base) AS a\nCOPY --from=b /x /x\nFROM \(BuildTests.base) AS b\nCOPY --from=a /y /y", "Dockerfile:3", "circular dependency"),
        ("FROM \(BuildTests.base)\nCOPY --from=7 /x /x", "Dockerfile:2", "invalid stage index 7"),
    ])
    func badInputExitsTwoNamingTheLine(dockerfile: String, line: String, detail: String) async throws {
        let f = try Fixture(dockerfile)
        try Self.sh("ln -s /etc \(f.context)/link && chown -h \(Harness.user.uid) \(f.context)/link")
        let r = try await f.build()
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stderr.contains(line) && r.stderr.contains(detail), "\(r.stderr)")
    }

    @Test func aHostileRunCannotReachTheHost() async throws {
        let f = try Fixture("""
        FROM \(Self.base)
        RUN cp /bin/busybox /suid && chmod 4755 /suid; mknod /dev-node c 1 3 2>/dev/null; ln -s /etc/shadow /shadow-link; \\
            dd if=/dev/zero of=/big bs=1M count=8 2>/dev/null; echo done
        """)
        let rootfs = f.dir + "/rootfs"
        let r = try await f.build(["--output", "type=local,dest=\(rootfs)", "--output", "type=docker,dest=\(f.dir)/docker.tar"])
        #expect(r.status == 0, "\(r.stderr)")
        // The symlink is only text; the device node is not there; nothing is setuid on the host.
        let link = try FileManager.default.destinationOfSymbolicLink(atPath: rootfs + "/shadow-link")
        #expect(link == "/etc/shadow")
        #expect(!FileManager.default.fileExists(atPath: rootfs + "/dev-node"))
        var st = stat()
        if lstat(rootfs + "/suid", &st) == 0 { #expect(st.st_uid != 0 || st.st_mode & 0o4000 == 0) }
        // docker load's manifest.json lists the layers in order.
        let manifest = try Self.output("tar -xOf \(f.dir)/docker.tar manifest.json")
        #expect(manifest.contains("\"Layers\""), "\(manifest)")
    }
}

/// The job step `build`: a job builds and pushes an image with its secrets and caches;
/// another job (with an empty state folder) pulls and runs it.
@Suite(.serialized) struct BuildStepJobTests {
    @Test func aJobBuildsAndPushesAnImageThatAnotherJobRuns() async throws {
        let ref = ImageTests.registry + "/built/app:\(UInt32.random(in: 0...UInt32.max))"
        let f = try JobFixture("""
        {"version": 1, "id": "image", "workspace": "src", "steps": [
          {"name": "image", "build": {"context": "app", "tags": ["\(ref)"], "push": true, "secrets": ["tok"],
                                      "args": {"WHO": "job"}}}
        ]}
        """, files: ["src/app/Dockerfile": """
        FROM \(BuildTests.base)
        ARG WHO
        RUN --mount=type=secret,id=tok --mount=type=cache,target=/cache,id=shared-with-jobs \\
            sh -c 'echo "token $(cat /run/secrets/tok)"; echo "built by $WHO" > /built; date > /cache/stamp'
        CMD ["cat", "/built"]
        """])
        try BuildTests.sh("chown -R \(Harness.user.uid) \(f.dir)")
        let secret = f.dir + "/tok.txt"
        try Harness.write(BuildTests.secretValue, to: secret)
        let r = try await f.run(["--policy", ImageTests.policy, "--secret", "id=tok,src=\(secret)"])
        #expect(r.status == 0, "\(r.stderr)")
        let log = try f.read("logs/01-image.log")
        #expect(log.contains("token ***") && !log.contains(BuildTests.secretValue), "\(log)")
        #expect(log.contains("pushing \(ref)"), "\(log)")
        // The build's cache mount is the job cache store's: same scope, same id.
        #expect(FileManager.default.fileExists(atPath: f.state + "/caches/default"), "caches")
        let runner = try JobFixture("""
        {"version": 1, "id": "use", "image": "\(ref)", "steps": [{"name": "look", "run": "cat /built"}]}
        """)
        let u = try await runner.run(["--policy", ImageTests.policy])
        #expect(u.status == 0, "\(u.stderr)")
        #expect(try runner.read("logs/01-look.log").contains("built by job"))
    }

    @Test(arguments: [
        ("{\"context\": \"../..\"}", "steps[1].build.context: \"../..\" leads out of the workspace"),
        ("{\"tags\": [\"10.9.8.7:5000/x:1\"], \"push\": true}", "steps[1].build.tags[0]: push:"),
    ])
    func aBuildStepIsAdmittedBeforeAnythingRuns(build: String, message: String) async throws {
        let f = try JobFixture("""
        {"version": 1, "id": "refused", "workspace": "src", "steps": [
          {"name": "first", "run": "echo ran-first"},
          {"name": "image", "build": \(build)}
        ]}
        """, files: ["src/Dockerfile": "FROM scratch\n"])
        let r = try await f.run(["--policy", ImageTests.policy])
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stderr.contains(message) && !r.stderr.contains("ran-first"), "\(r.stderr)")
    }
}
