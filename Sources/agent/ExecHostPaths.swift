import AgentCore
import AgentSupport
import FoundationEssentials
import Glibc
import Sandbox

/// `agent exec`'s host paths (`--rootfs DIR`, `--bind SRC:...`): the operator's own, so
/// they may be anywhere and follow symlinks, but never the agent's home, state folder or
/// binary, nor a folder containing one of them. Each is opened once here and handed to the
/// shim with its identity, so what is mounted is what was checked.
enum ExecHostPaths {
    /// A host path that may not be given to a container.
    struct Refusal: Error, CustomStringConvertible {
        var flag: String
        var path: String
        var why: String
        var description: String { "\(flag) \(path): cannot be given to a container: \(why)" }
    }

    /// `c` with its rootfs and bind sources opened and checked. `keep` receives the
    /// descriptors, which must stay open until the container has started.
    static func admit(_ c: inout ContainerConfiguration, keep: inout [Int32],
                      environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        let state = (try? StateDirectory.resolve(explicit: nil, environment: environment))?.root ?? "/nonexistent"
        let protected = ProtectedPaths.current(stateDirectory: state, environment: environment)
        if case .directory(let dir) = c.rootfs {
            c.rootfs = .directory(try open(dir.path, flag: "--rootfs", protected: protected, keep: &keep))
        }
        for (i, m) in c.mounts.enumerated() {
            guard case .bind(let source, let ro) = m.kind else { continue }
            c.mounts[i].kind = .bind(source: try open(source.path, flag: "--bind", protected: protected, keep: &keep), readOnly: ro)
        }
    }

    private static func open(_ path: String, flag: String, protected: ProtectedPaths, keep: inout [Int32]) throws -> HostPath {
        let fd = Glibc.open(path, O_PATH | O_CLOEXEC)
        // A missing source is the shim's to report, at its stage, as before.
        guard fd >= 0 else { return HostPath(path) }
        if let why = protected.refusal(for: fd) {
            close(fd)
            throw Refusal(flag: flag, path: path, why: why)
        }
        keep.append(fd)
        return HostPath(descriptor: fd) ?? HostPath(path)
    }
}
