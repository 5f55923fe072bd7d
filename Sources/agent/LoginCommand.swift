import AgentSupport
import AgentCore
import ArgumentParser
import FoundationEssentials
import Glibc
import Images

/// `agent login REGISTRY`: stores the operator's credentials for a registry in
/// `$REGISTRY_AUTH_FILE`, else `~/.docker/config.json` (Docker's format), which every pull
/// then reads (README "Container images"). The password is never an argument (argv is
/// visible in /proc to every user) and never printed: `--password-stdin`, or typed at a
/// terminal with echo off. The login is checked against the registry first (as `docker
/// login` does; `--no-verify` skips that, for a registry not reachable from here).
/// Exit codes: 0 stored, 1 the registry refused the login (nothing stored), 2 usage,
/// 3 the registry could not be reached or the file could not be written.
struct LoginCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "login", abstract: "Store credentials for a registry (for image pulls).")

    @Argument(help: "Registry: host or host:port (docker.io for Docker Hub).")
    var registry: String

    @Option(help: "User name (asked at the terminal when not given).")
    var username: String?

    @Flag(name: .customLong("password-stdin"), help: "Read the password from stdin (else asked at the terminal, not echoed).")
    var passwordStdin = false

    @Flag(name: .customLong("no-verify"), help: "Store the login without checking it against the registry.")
    var noVerify = false

    @Option(help: "Agent policy file, for images.insecureRegistries (default: $AGENT_POLICY, else the built-in policy).")
    var policy: String?

    func run() throws {
        try checkRegistry(registry)
        let user: String
        if let username { user = username } else {
            guard isatty(0) == 1 else { throw ValidationError("--username is needed when stdin is not a terminal") }
            printToStandardError("Username: ")
            user = readLine(strippingNewline: true) ?? ""
        }
        guard !user.isEmpty, !user.contains(":") else { throw ValidationError("the user name must be non-empty and without ':'") }
        let password: String
        if passwordStdin {
            // As docker: the whole of stdin, without its trailing newline.
            var text = String(decoding: readUpTo(0, limit: 1 << 16) ?? [], as: UTF8.self)
            while text.hasSuffix("\n") || text.hasSuffix("\r") { text.removeLast() }
            password = text
        } else {
            guard isatty(0) == 1 else { throw ValidationError("give --password-stdin when stdin is not a terminal") }
            password = readHidden("Password: ")
        }
        guard !password.isEmpty else { throw ValidationError("the password is empty") }
        if !noVerify { try verify(RegistryCredentials.Login(user: user, password: password)) }
        do {
            let path = try RegistryLogin.store(.init(user: user, password: password), registry: registry,
                                               environment: ProcessInfo.processInfo.environment)
            print("Login for \(registry) stored in \(path)")
        } catch {
            printToStandardError("agent: \(error)\n")
            throw ExitCode(3)
        }
    }

    /// Asks the registry whether it takes `login` (exit 1 when it refuses, 3 when it cannot be asked).
    func verify(_ login: RegistryCredentials.Login) throws {
        let env = ProcessInfo.processInfo.environment
        let insecure = try AgentPolicy.resolve(commandLine: policy, environment: env).policy.images.insecureRegistries
        var host = Substring(registry)
        for p in ["https://", "http://"] where host.hasPrefix(p) { host = host.dropFirst(p.count) }
        if host.hasSuffix("/") { host = host.dropLast() }
        let ref: ImageReference
        do { ref = try ImageReference.parse(host + "/agent-login/check") } catch { throw ValidationError("\(registry): \(error)") }
        let client = RegistryClient(reference: ref, plainHTTP: ref.isLoopback || insecure.contains(ref.registry) || insecure.contains(ref.hostName),
                                    credentials: RegistryCredentials(auths: [ref.registry: login]))
        do {
            try client.verifyLogin()
        } catch ImageError.unauthorized(let r, let challenge) {
            printToStandardError("agent: registry \(r) refused the login for \(login.user) (\(challenge)); nothing was stored\n")
            throw ExitCode(1)
        } catch {
            printToStandardError("agent: \(error); nothing was stored (--no-verify stores a login without asking the registry)\n")
            throw ExitCode(3)
        }
    }

    /// A line from the terminal with echo off (restored after, also when it fails).
    func readHidden(_ prompt: String) -> String {
        printToStandardError(prompt)
        var saved = termios()
        let have = tcgetattr(0, &saved) == 0
        if have {
            var quiet = saved
            quiet.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(0, TCSAFLUSH, &quiet)
        }
        defer {
            if have { tcsetattr(0, TCSAFLUSH, &saved) }
            printToStandardError("\n")
        }
        return readLine(strippingNewline: true) ?? ""
    }
}

/// `agent logout REGISTRY`: removes the registry's credentials from the same file.
/// Exit codes: 0 removed, 1 there were none, 2 usage, 3 the file could not be written.
struct LogoutCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logout", abstract: "Remove the stored credentials for a registry.")

    @Argument(help: "Registry: host or host:port.")
    var registry: String

    func run() throws {
        try checkRegistry(registry)
        let found: Bool
        do {
            found = try RegistryLogin.remove(registry: registry, environment: ProcessInfo.processInfo.environment)
        } catch {
            printToStandardError("agent: \(error)\n")
            throw ExitCode(3)
        }
        guard found else {
            printToStandardError("agent: not logged in to \(registry)\n")
            throw ExitCode(1)
        }
        print("Removed login for \(registry)")
    }
}

/// A registry is a host[:port] (an `https://` prefix as docker accepts it): no spaces,
/// no path, nothing that could not be a key in the credentials file.
private func checkRegistry(_ r: String) throws {
    var host = Substring(r)
    for p in ["https://", "http://"] where host.hasPrefix(p) { host = host.dropFirst(p.count) }
    if host.hasSuffix("/") { host = host.dropLast() }
    guard !host.isEmpty, !host.contains(where: { $0 == "/" || $0 == " " || $0.isNewline || $0 == "@" }) else {
        throw ValidationError("'\(r)' is not a registry: write host or host:port")
    }
}
