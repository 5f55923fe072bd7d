import Foundation
import Testing

/// Runs the built `agent` binary as the unprivileged test user that `ci/test.sh` creates.
///
/// When the test process is root (as in CI), every agent invocation goes through
/// `setpriv --reuid/--regid --clear-groups`, so the agent under test is never root.
/// Configured by `ci/test.sh` through AGENT_BIN, AGENT_FIXTURES and AGENT_TEST_USER.
enum Harness {
    struct Result: Sendable {
        var status: Int32
        var stdout: String
        var stderr: String
        var stdoutBytes: Data
    }

    struct User: Sendable {
        var name: String
        var uid: UInt32
        var gid: UInt32
        var home: String
    }

    static var agentBinary: String {
        guard let bin = ProcessInfo.processInfo.environment["AGENT_BIN"] else {
            Issue.record("AGENT_BIN is not set: run the tests through ci/test.sh")
            return "/nonexistent/agent"
        }
        return bin
    }

    static var fixtures: String {
        ProcessInfo.processInfo.environment["AGENT_FIXTURES"] ?? "/opt/agent-test/fixtures"
    }

    static var busyboxRootfs: String { fixtures + "/busybox-rootfs" }
    static var dockerSeccompProfile: String { fixtures + "/seccomp/docker-default.json" }
    static var junitSchema: String { fixtures + "/junit/JUnit.xsd" }

    /// An agent policy from `ci/test-policies` (copied by ci/test.sh), for `--policy`:
    /// `agent exec` obeys the policy, so `--seccomp unconfined`, another profile, the host
    /// network or an extra capability need a policy that allows them.
    static func testPolicy(_ name: String) -> String { fixtures + "/test-policies/\(name).json" }

    static var isRoot: Bool { getuid() == 0 }

    /// The user the agent runs as: the test user when we are root, else ourselves.
    static var user: User {
        if isRoot {
            let name = ProcessInfo.processInfo.environment["AGENT_TEST_USER"] ?? "agentci"
            guard let pw = getpwnam(name) else {
                Issue.record("test user \(name) does not exist: run the tests through ci/test.sh")
                return User(name: name, uid: 65534, gid: 65534, home: "/nonexistent")
            }
            return User(name: name, uid: pw.pointee.pw_uid, gid: pw.pointee.pw_gid, home: String(cString: pw.pointee.pw_dir))
        }
        let pw = getpwuid(getuid())!
        return User(name: String(cString: pw.pointee.pw_name), uid: getuid(), gid: getgid(), home: String(cString: pw.pointee.pw_dir))
    }

    /// A fresh directory owned by the test user (mode 0755) under /tmp.
    static func scratch(_ label: String = "it") throws -> String {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("agent-\(label)-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(dir, 0o755)
        let u = user
        chown(dir, u.uid, u.gid)
        return dir
    }

    /// Writes `contents` to `path` owned by the test user.
    static func write(_ contents: String, to path: String, mode: mode_t = 0o644) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        // A child another test forks meanwhile copies our descriptors and holds them until
        // its exec (close-on-exec closes them only then): a script it held open for writing
        // could not be exec'd (ETXTBSY). So an executable is written beside its path and
        // installed by `install`, and no descriptor of ours ever has the final file open.
        let executable = mode & 0o111 != 0
        let target = executable ? path + ".writing" : path
        let fd = open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path]) }
        let bytes = Array(contents.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard written == bytes.count else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path]) }
        if executable {
            var pid: pid_t = 0, status: Int32 = -1
            let args: [String] = ["/usr/bin/install", "-m", String(mode, radix: 8), target, path]
            let argv = args.map { strdup($0) } + [nil]
            defer { argv.forEach { free($0) } }
            if posix_spawn(&pid, "/usr/bin/install", nil, nil, argv, environ) == 0 {
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            }
            unlink(target)
            guard status == 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path]) }
        }
        chmod(path, mode)
        let u = user
        chown(path, u.uid, u.gid)
        chown(url.deletingLastPathComponent().path, u.uid, u.gid)
    }

    /// The base environment of an agent run: HOME of the test user and a plain PATH.
    static func baseEnvironment() -> [String: String] {
        let u = user
        return [
            "HOME": u.home, "USER": u.name, "LOGNAME": u.name,
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "LANG": "C.UTF-8",
        ]
    }

    /// Builds the Process that runs `agent args...` as the test user (not started).
    static func process(_ args: [String], environment: [String: String] = [:], cwd: String? = nil) -> Process {
        let p = Process()
        var env = baseEnvironment()
        for (k, v) in environment { env[k] = v }
        if isRoot {
            let u = user
            p.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            p.arguments = ["--reuid=\(u.uid)", "--regid=\(u.gid)", "--clear-groups", "--", agentBinary] + args
        } else {
            p.executableURL = URL(fileURLWithPath: agentBinary)
            p.arguments = args
        }
        p.environment = env
        if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        return p
    }

    /// Starts `agent args...` as the test user and returns once `marker` has appeared on its
    /// stderr (or it closed stderr, or 30 s passed), with the stderr seen so far. setpriv
    /// execs the agent, so the process's pid is the agent's (for `kill`).
    static func start(_ args: [String], until marker: String) throws -> (process: Process, stderr: String) {
        let p = process(args)
        let errPipe = Pipe()
        p.standardError = errPipe
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        var seen = ""
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline && !seen.contains(marker) {
            let chunk = errPipe.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            seen += String(decoding: chunk, as: UTF8.self)
        }
        return (p, seen)
    }

    /// Runs `agent args...` as the test user and collects its output.
    static func run(
        _ args: [String], environment: [String: String] = [:], cwd: String? = nil, stdin: String? = nil
    ) async throws -> Result {
        let p = process(args, environment: environment, cwd: cwd)
        let outPipe = Pipe(), errPipe = Pipe()
        p.standardOutput = outPipe
        p.standardError = errPipe
        if let stdin {
            let inPipe = Pipe()
            p.standardInput = inPipe
            try p.run()
            inPipe.fileHandleForWriting.write(Data(stdin.utf8))
            try inPipe.fileHandleForWriting.close()
        } else {
            p.standardInput = FileHandle.nullDevice
            try p.run()
        }
        // Drain both pipes concurrently so a chatty child never blocks.
        async let out = readToEnd(outPipe.fileHandleForReading)
        async let err = readToEnd(errPipe.fileHandleForReading)
        let (o, e) = await (out, err)
        await waitForExit(p)
        return Result(
            status: p.terminationStatus,
            stdout: String(decoding: o, as: UTF8.self),
            stderr: String(decoding: e, as: UTF8.self),
            stdoutBytes: o
        )
    }

    /// Reads `handle` to EOF on a thread of its own. A blocking read inside a Task would
    /// hold one of the cooperative pool's threads (two on a 2-core machine), so two
    /// concurrent `run`s could not both start their agents: the second waited for the first.
    static func readToEnd(_ handle: FileHandle) async -> Data {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: handle.readDataToEndOfFile()) }
        }
    }

    /// Waits for `p` on a thread of its own, for the same reason as `readToEnd`: a test that
    /// blocks a cooperative thread can stall every other test's agent (and its time bounds).
    static func waitForExit(_ p: Process) async {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { p.waitUntilExit(); continuation.resume() }
        }
    }

    /// Shorthand for `agent exec [options] -- command...`.
    static func exec(_ options: [String], _ command: [String], environment: [String: String] = [:]) async throws -> Result {
        try await run(["exec"] + options + ["--"] + command, environment: environment)
    }

    /// Every regular file below `dir` whose bytes contain `needle` (symlinks not followed).
    static func filesContaining(_ needle: String, in dir: String) -> [String] {
        var hits: [String] = []
        guard let e = FileManager.default.enumerator(atPath: dir) else { return [] }
        while let rel = e.nextObject() as? String {
            let path = dir + "/" + rel
            var st = stat()
            guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            if let data = FileManager.default.contents(atPath: path), data.range(of: Data(needle.utf8)) != nil { hits.append(path) }
        }
        return hits
    }
}
