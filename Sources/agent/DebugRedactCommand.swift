import AgentSupport
import AgentCore
import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

/// `agent debug redact --secrets-file FILE`: filters stdin to stdout through the redactor,
/// with one secret per line of FILE. A benchmark helper (`ci/bench/redactor.sh`); hidden.
struct DebugRedactCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redact",
        abstract: "Filter stdin to stdout, replacing the secrets in FILE (one per line) with ***."
    )

    @Option(name: .customLong("secrets-file"), help: "File with one secret value per line.")
    var secretsFile: String

    @Option(name: .customLong("chunk-size"), help: "Bytes per read(2) of stdin.")
    var chunkSize: Int = 128 * 1024

    func run() throws {
        guard chunkSize > 0 else {
            throw ValidationError("--chunk-size must be positive")
        }
        let secrets: [(id: String, value: [UInt8])]
        do {
            let flag = SecretSourceFlag(id: "secrets-file", source: .file(secretsFile), text: secretsFile)
            let store = try SecretStore.resolve(
                job: JobSpec(id: "debug-redact", steps: [], baseDirectory: "/"), cliSecrets: [flag],
                environment: [:], cwd: currentDirectory(), maxBytes: 64 << 20)
            guard let contents = store.value(for: "secrets-file") else {
                printToStandardError("agent: --secrets-file \"\(secretsFile)\": no such file\n")
                throw ExitCode(2)
            }
            secrets = contents.split(separator: UInt8(ascii: "\n")).enumerated().map { (id: "line \($0.offset + 1)", value: Array($0.element)) }
        } catch let error as SecretError {
            printToStandardError("agent: \(error)\n")
            throw ExitCode(error.exitCode)
        }
        var redactor = Redactor(SecretMatcher(secrets: secrets))
        while true {
            // Read straight into the redactor's buffer and write its pieces straight out:
            // the same copy-free loop a step's output pipe can use.
            let got = try redactor.process(filling: chunkSize, from: { room in
                read(0, room.baseAddress, room.count)
            }, emit: writeAll)
            if got < 0 {
                if errno == EINTR { continue }
                printToStandardError("agent: reading stdin: \(String(cString: strerror(errno)))\n")
                throw ExitCode(3)
            }
            if got == 0 { break }
        }
        try redactor.flush(emit: writeAll)
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let wrote = write(1, bytes.baseAddress! + offset, bytes.count - offset)
            if wrote < 0 {
                if errno == EINTR { continue }
                printToStandardError("agent: writing stdout: \(String(cString: strerror(errno)))\n")
                throw ExitCode(3)
            }
            offset += wrote
        }
    }

    private func currentDirectory() -> String {
        guard let cwd = getcwd(nil, 0) else { return "/" }
        defer { free(cwd) }
        return String(cString: cwd)
    }
}
