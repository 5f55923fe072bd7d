import AgentSupport
import FoundationEssentials
import Glibc

/// `results/artifacts/manifest.json`: every kept file with its size, mode and SHA-256.
///
/// ```json
/// {"artifacts":[{"name":"dist","files":[
///   {"path":"dist/dist/app","size":123,"mode":"0755","sha256":"9f86…"},
///   {"path":"dist/dist/latest","symlink":"app"}]}]}
/// ```
/// `path` is relative to `results/artifacts/` (the rule's folder, then the file's path in
/// the workspace), the same paths `SHA256SUMS` lists, so `cd results/artifacts &&
/// sha256sum -c SHA256SUMS` verifies a download. Symlinks have `symlink` (their target)
/// instead of size, mode and hash, and are not in `SHA256SUMS`.
public struct ArtifactManifest: Sendable, Equatable, Codable {
    public struct Artifact: Sendable, Equatable, Codable {
        public var name: String
        public var files: [File]
        public init(name: String, files: [File] = []) {
            self.name = name
            self.files = files
        }
    }

    public struct File: Sendable, Equatable, Codable {
        public var path: String
        public var size: UInt64?
        /// Permission bits in octal, e.g. `"0644"`.
        public var mode: String?
        public var sha256: String?
        /// The target, for a symlink.
        public var symlink: String?

        public init(path: String, size: UInt64, mode: UInt32, sha256: String) {
            self.path = path
            self.size = size
            self.mode = String(repeating: "0", count: max(0, 4 - String(mode & 0o7777, radix: 8).count)) + String(mode & 0o7777, radix: 8)
            self.sha256 = sha256
        }

        public init(path: String, symlink: String) {
            self.path = path
            self.symlink = symlink
        }
    }

    public var artifacts: [Artifact]

    public init(artifacts: [Artifact] = []) {
        self.artifacts = artifacts
    }

    /// The manifest as JSON (sorted keys, one stable form).
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        var data = try encoder.encode(self)
        data.append(0x0A)
        return data
    }

    /// `SHA256SUMS` in the format `sha256sum -c` reads: `<hex>  <path>`; a path with a
    /// backslash, LF or CR is escaped (`\\`, `\n`, `\r`) and the line starts with `\`, as
    /// coreutils does, so no file name can forge or split a line.
    public func sha256sums() -> String {
        var out = ""
        for artifact in artifacts {
            for file in artifact.files {
                guard let hash = file.sha256 else { continue }
                let (name, escaped) = LineText.escapedName(file.path)
                out += (escaped ? "\\" : "") + "\(hash)  \(name)\n"
            }
        }
        return out
    }

    /// Writes `manifest.json` and `SHA256SUMS` into `directory` (each atomically).
    public func write(to directory: String) throws {
        try AtomicReportFile.write(Array(try jsonData()), to: directory + "/manifest.json", mode: 0o644)
        try AtomicReportFile.write(Array(sha256sums().utf8), to: directory + "/SHA256SUMS", mode: 0o644)
    }
}

/// Names in line-oriented files (SHA256SUMS and the like), by coreutils' convention.
public enum LineText {
    /// `name` with `\` → `\\`, LF → `\n`, CR → `\r`, and whether anything was escaped (the
    /// line must then start with `\`). Works on Unicode scalars: Swift treats CR LF as one
    /// Character, so a Character-based `contains("\n")` misses it.
    public static func escapedName(_ name: String) -> (String, Bool) {
        guard name.unicodeScalars.contains(where: { $0 == "\\" || $0 == "\n" || $0 == "\r" }) else { return (name, false) }
        var out = String.UnicodeScalarView()
        for scalar in name.unicodeScalars {
            switch scalar {
            case "\\": out.append(contentsOf: "\\\\".unicodeScalars)
            case "\n": out.append(contentsOf: "\\n".unicodeScalars)
            case "\r": out.append(contentsOf: "\\r".unicodeScalars)
            default: out.append(scalar)
            }
        }
        return (String(out), true)
    }
}
