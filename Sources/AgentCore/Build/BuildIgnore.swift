import AgentSupport
import Dockerfile
import FoundationEssentials
import Glibc

/// The context's `.dockerignore`, read once by descriptor (never following a symlink) at
/// the start of a build and matched with the Dockerfile module's `DockerIgnore` (Docker's
/// pattern rules: `!` re-includes, `**`, the last match decides). A file that does not
/// parse fails the build (exit 2) naming it.
struct BuildIgnore: Sendable {
    let matcher: DockerIgnore?

    init(contextFD fd: Int32) throws(BuildError) {
        let f = openat(fd, ".dockerignore", O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard f >= 0 else { matcher = nil; return }
        defer { close(f) }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while bytes.count < 1 << 20 {
            let n = read(f, &buf, buf.count)
            if n <= 0 { break }
            bytes += buf[0..<n]
        }
        do { matcher = try DockerIgnore(text: String(decoding: bytes, as: UTF8.self)) } catch {
            throw BuildError(.badInput, stage: "context", ".dockerignore: \(error)")
        }
    }

    /// Whether `path` (relative to the context, `/`-separated) is excluded.
    func excluded(_ path: String) -> Bool {
        guard let matcher, !path.isEmpty else { return false }
        return matcher.isExcluded(path)
    }
}
