import AgentSupport
import FoundationEssentials
import Glibc
import Sandbox
import SandboxPolicy

/// A job's resolved secrets with the matcher built once: redaction of every string the
/// agent writes, one streaming redactor per output stream, and the artifact leak scanner.
struct JobSecrets: Sendable {
    let store: SecretStore
    let matcher: SecretMatcher

    init(_ store: SecretStore) {
        self.store = store
        self.matcher = store.makeMatcher()
    }

    var warnings: [String] { store.warnings }
    func value(for id: String) -> [UInt8]? { store.value(for: id) }
    func redact(_ text: String) -> String { matcher.redact(text) }
    func streamRedactor() -> Redactor { Redactor(matcher) }
    var scanner: (any ArtifactScanner)? { store.isEmpty ? nil : SecretArtifactScanner(scanner: SecretScanner(matcher: matcher)) }
}

/// Rejects an artifact that contains a secret (raw or encoded), naming the file and the
/// secret id, never the value.
struct SecretArtifactScanner: ArtifactScanner {
    let scanner: SecretScanner

    func scan(artifact: String, path: String, fileDescriptor: Int32) throws -> ArtifactScanVerdict {
        let leaks = try scanner.scan(fileDescriptor: fileDescriptor, path: path)
        guard !leaks.isEmpty else { return .clean }
        let ids = Set(leaks.map(\.secretID)).sorted().map { "\"\($0)\"" }.joined(separator: ", ")
        return .reject("artifact file \(path) contains the value of secret \(ids)")
    }

    /// A name (path, rule name or symlink target) holding a secret or an encoded form of
    /// one is refused, naming the secret ids; `shown` has the secret masked.
    func checkName(_ name: String) -> ArtifactNameRejection? {
        let leaks = scanner.scan(bytes: Array(name.utf8), path: name)
        guard !leaks.isEmpty else { return nil }
        let ids = leaks.map { SecretError.quote($0.secretID) }.joined(separator: ", ")
        return ArtifactNameRejection(shown: scanner.matcher.redact(name),
                                     reason: leaks.count == 1 ? "contains secret \(ids)" : "contains secrets \(ids)")
    }
}
