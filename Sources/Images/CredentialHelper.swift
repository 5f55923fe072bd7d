import AgentSupport
import CAgentSandbox
import FoundationEssentials
import Glibc

/// Docker's credential helpers (`credHelpers` and `credsStore` of `config.json`): the
/// operator's program `docker-credential-NAME`, found on the agent's `PATH`, run as
/// `docker-credential-NAME get` with the registry on its stdin, answering
/// `{"ServerURL": ..., "Username": ..., "Secret": ...}`. Bounded: 10 s (then its process
/// group is killed) and 64 KiB of answer. "Not found" (any failure exit whose output says
/// so, as the helpers of docker-credential-helpers do) means no login; another failure is
/// an error naming the helper. The secret never appears in a message.
struct CredentialHelper: Sendable {
    let name: String
    let searchPath: String
    var timeout: Duration = .seconds(10)

    /// A helper name as Docker allows it: the suffix of `docker-credential-`.
    static func isValidName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 64 && s.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b == 0x2d || b == 0x5f || b == 0x2e
        }
    }

    var program: String { "docker-credential-" + name }

    /// The login for `registry`, nil when the helper has none.
    func get(_ registry: String) throws(ImageError) -> RegistryCredentials.Login? {
        guard Self.isValidName(name) else {
            throw .unsupported(reference: registry, problem: "credential helper \(jsonish(name)) is not a valid helper name")
        }
        guard let path = searchPath.split(separator: ":").map({ String($0) + "/" + program })
            .first(where: { access($0, X_OK) == 0 }) else {
            throw .unsupported(reference: registry, problem: "credential helper \(program) is not on the agent's PATH")
        }
        let out = try run(path, input: registry + "\n", registry: registry)
        guard out.status == 0 else {
            let text = String(decoding: out.bytes.prefix(512), as: UTF8.self)
            if text.lowercased().contains("not found") { return nil }
            throw .unsupported(reference: registry, problem: "credential helper \(program) failed with status \(out.status)")
        }
        guard case .object(let o)? = try? JSONValue.parse(out.bytes), let user = o["Username"]?.string,
              let secret = o["Secret"]?.string else {
            throw .unsupported(reference: registry, problem: "credential helper \(program) answered no Username and Secret")
        }
        if user.isEmpty && secret.isEmpty { return nil }
        return RegistryCredentials.Login(user: user, password: secret)
    }

    /// Runs the helper in a process group of its own: `input` on stdin, stdout collected
    /// (bounded), stderr dropped, killed at the deadline.
    private func run(_ path: String, input: String, registry: String) throws(ImageError) -> (status: Int32, bytes: [UInt8]) {
        // stdin is a socket, not a pipe: a helper that exits without reading it must not
        // kill the agent with SIGPIPE (send with MSG_NOSIGNAL gets EPIPE instead).
        var inFds: [Int32] = [0, 0], outFds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &inFds) == 0 else {
            throw .store(path: program, operation: "socketpair", errno: errno)
        }
        guard agent_sandbox_pipe(&outFds) == 0 else {
            close(inFds[0]); close(inFds[1])
            throw .store(path: program, operation: "pipe", errno: errno)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inFds[0], 0)
        posix_spawn_file_actions_adddup2(&actions, outFds[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attr, 0)
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(path), strdup("get"), nil]
        defer { for a in argv { free(a) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attr, argv, environ)
        close(inFds[0]); close(outFds[1])
        guard rc == 0 else {
            close(inFds[1]); close(outFds[0])
            throw .store(path: path, operation: "spawn credential helper", errno: rc)
        }
        let bytes = Array(input.utf8)
        _ = bytes.withUnsafeBytes { send(inFds[1], $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        close(inFds[1])
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        let deadline = ContinuousClock.now + timeout
        var timedOut = false
        while true {
            let left = ContinuousClock.now.duration(to: deadline)
            if left <= .zero { timedOut = true; break }
            var p = pollfd(fd: outFds[0], events: Int16(POLLIN), revents: 0)
            let ms = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
            let n = poll(&p, 1, ms)
            if n < 0 { if errno == EINTR { continue }; break }
            if n == 0 { continue }
            let r = read(outFds[0], &buf, buf.count)
            if r < 0 { if errno == EINTR { continue }; break }
            if r == 0 { break }
            if out.count + r > 64 << 10 { timedOut = false; kill(-pid, SIGKILL); out = []; break }
            out += buf[0..<r]
        }
        close(outFds[0])
        if timedOut { kill(-pid, SIGKILL) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        if timedOut {
            throw .unsupported(reference: registry, problem: "credential helper \(program) did not answer within \(timeout.components.seconds) s")
        }
        let exited = (status & 0x7f) == 0
        return (exited ? (status >> 8) & 0xff : 128 + (status & 0x7f), out)
    }
}
