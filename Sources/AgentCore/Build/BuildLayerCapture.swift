import AgentSupport
import FoundationEssentials
import Glibc
import Images
import Sandbox
import SandboxPolicy

/// Turns what a RUN left in its overlay's upper folder into a layer blob, reading only the
/// upper folder (never a walk of the whole root).
///
/// With subordinate id mapping the files a RUN made as other users belong to subordinate
/// host ids the agent may not read (a `0600` file of uid 1000). So the tar is made inside
/// a user namespace with the same mapping: a second short container (the host's
/// read-only `/usr`, the upper folder bound read-only at `/upper`) runs the host's GNU tar
/// as container root, whose `CAP_DAC_OVERRIDE` reads every mapped file, with owners
/// already as the container sees them (`--numeric-owner`). `LayerWriter` re-writes that
/// stream deterministically, overlay whiteouts converted to OCI ones.
struct BuildLayerCapture {
    let workDirectory: String
    let seccomp: SeccompPolicy
    let allowRoot: Bool

    /// Removes the mount points agent-init had to make in `upper` for the RUN's mounts
    /// (and `dev`, `proc`, `sys` when the image lacks them): an empty stub that no lower
    /// layer has is not part of what the command did. Stubs belong to the agent's user.
    static func removeMountStubs(upper: String, targets: [String], lower: SourceTree) {
        for target in targets.sorted(by: { $0.count > $1.count }) {
            var parts = target.split(separator: "/").map(String.init)
            while !parts.isEmpty {
                let rel = parts.joined(separator: "/")
                if (try? lower.lookup(rel, what: "stub")) ?? nil != nil { break }
                let path = upper + "/" + rel
                var st = stat()
                guard lstat(path, &st) == 0 else { parts.removeLast(); continue }
                if (st.st_mode & S_IFMT) == S_IFDIR {
                    guard rmdir(path) == 0 else { break }
                } else if (st.st_mode & S_IFMT) == S_IFREG && st.st_size == 0 {
                    guard unlink(path) == 0 else { break }
                } else {
                    break
                }
                parts.removeLast()
            }
        }
    }

    /// Writes the layer of `upper` into the store.
    func capture(upper: String, writer: LayerWriter) async throws(BuildError) -> WrittenLayer {
        let out = workDirectory + "/out"
        guard mkdir(out, 0o700) == 0 || errno == EEXIST else {
            throw BuildError(.agent, stage: "layer", "cannot create \(out): \(String(cString: strerror(errno)))")
        }
        var c = ContainerConfiguration(command: [
            "/usr/bin/tar", "--sort=name", "--format=pax", "--numeric-owner", "--xattrs", "--xattrs-include=*",
            "--one-file-system", "-C", "/upper", "-cf", "/out/layer.tar", ".",
        ])
        c.rootfs = .host
        c.mounts = [.bind(upper, "/upper", readOnly: true), .bind(out, "/out", readOnly: false)]
        c.capabilities = .dockerDefault
        c.seccomp = seccomp
        c.network = .none
        c.allowRoot = allowRoot
        c.timeout = .seconds(3600)
        let result: ContainerResult
        var tail: [UInt8] = []
        do {
            let container = try await RunningContainer.start(c)
            for await chunk in container.output where tail.count < 4096 { tail += chunk.bytes }
            result = await container.wait()
        } catch {
            throw BuildError(.agent, stage: "layer", "cannot read the RUN's changes: \(error)")
        }
        guard result.status == .exited(0) else {
            throw BuildError(.agent, stage: "layer", "reading the RUN's changes failed (\(result.status)): "
                             + String(decoding: tail, as: UTF8.self).trimmingWhitespaceAndNewlines())
        }
        let fd = open(out + "/layer.tar", O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw BuildError(.agent, stage: "layer", "cannot open the RUN's changes: \(String(cString: strerror(errno)))") }
        defer { close(fd); unlink(out + "/layer.tar") }
        var w = writer
        w.options.convertOverlayWhiteouts = true
        w.options.idMapping = nil
        do { return try w.write(.tarStream(fd)) } catch {
            throw BuildError(.agent, stage: "layer", "cannot write the RUN's layer: \(error)")
        }
    }
}
