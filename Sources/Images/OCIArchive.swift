import AgentSupport
import CArchive
import FoundationEssentials
import Glibc

/// `oci-archive:FILE`: a tar (optionally gzip-compressed) of an OCI image layout, as
/// `skopeo copy ... oci-archive:FILE` writes it. Only the layout's own files are taken
/// out of it, each under a name the agent builds, never the entry's path: `oci-layout`,
/// `index.json` and `blobs/sha256/HEX` (64 hex digits) as regular files. Folders are
/// made by the agent, anything else (other names, links, devices) is skipped, so an
/// entry can neither climb out of the staging folder nor plant a symlink. The staged
/// layout is then imported as `oci:` (every blob's digest and size checked) and removed.
extension ImageStore {
    public func importOCIArchive(file: String, tag: String?, as reference: String) throws(ImageError) -> PreparedImage {
        let stage = content.temporaryPath("oci-archive")
        guard mkdir(stage, 0o700) == 0 else { throw .store(path: stage, operation: "create", errno: errno) }
        defer { removeStage(stage) }
        for d in ["/blobs", "/blobs/sha256"] where mkdir(stage + d, 0o700) != 0 {
            throw .store(path: stage + d, operation: "create", errno: errno)
        }
        try OCIArchiveReader(file: file).extract(into: stage)
        return try importLayout(path: stage, tag: tag, as: reference)
    }

    func removeStage(_ stage: String) {
        let blobs = stage + "/blobs/sha256"
        if let names = try? FileManager.default.contentsOfDirectory(atPath: blobs) {
            for n in names { unlink(blobs + "/" + n) }
        }
        unlink(stage + "/oci-layout"); unlink(stage + "/index.json")
        rmdir(blobs); rmdir(stage + "/blobs"); rmdir(stage)
    }
}

struct OCIArchiveReader {
    let file: String
    var name: String { "oci-archive:" + file }

    /// Where entry `path` goes beneath the staging folder, or nil when it is not a file of
    /// an OCI layout (then it is skipped).
    static func destination(_ path: String) -> String? {
        let parts = path.split(separator: "/").filter { $0 != "." }.map(String.init)
        if parts == ["oci-layout"] || parts == ["index.json"] { return parts[0] }
        guard parts.count == 3, parts[0] == "blobs", parts[1] == "sha256", parts[2].utf8.count == 64,
              parts[2].utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else { return nil }
        return "blobs/sha256/" + parts[2]
    }

    /// Takes the layout's files out of the tar (plain or gzip; the walk is `ArchiveEntries`,
    /// shared with `docker-archive:`), each under the name `destination` builds.
    func extract(into stage: String) throws(ImageError) {
        let entries = ArchiveEntries(file: file, name: name)
        try entries.each { (path: String, a: OpaquePointer) throws(ImageError) -> Bool in
            guard let dest = Self.destination(path) else { return false }
            let target = stage + "/" + dest
            // O_EXCL: an entry written twice is refused rather than silently replaced.
            let fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                if errno == EEXIST { throw .unsupported(reference: name, problem: "entry \"\(path)\" appears twice") }
                throw .store(path: target, operation: "create", errno: errno)
            }
            defer { close(fd) }
            try entries.copy(a, path: path) { (chunk: ArraySlice<UInt8>) throws(ImageError) in
                guard writeAll(fd, chunk) else { throw .store(path: target, operation: "write", errno: errno) }
            }
            return true
        }
    }
}
