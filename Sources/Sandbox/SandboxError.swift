import AgentSupport
import FoundationEssentials
import Glibc

/// A failure to set up or supervise a container. Names the stage that failed, e.g.
/// `sandbox setup failed at pivot_root: Operation not permitted`.
public struct SandboxError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The failing stage, as the shim reports it (`clone`, `uid_map`, `mount /workspace`, `pivot_root`, `exec`, ...).
    public var stage: String
    /// The errno the kernel returned, if the failure came from a syscall.
    public var errno: Int32?
    /// Extra detail (a path, a mount target).
    public var detail: String?

    public init(stage: String, errno: Int32? = nil, detail: String? = nil) {
        self.stage = stage
        self.errno = errno
        self.detail = detail
    }

    /// True when the command itself could not be executed (not found, not executable):
    /// `agent exec` reports these with exit code 127/126 as Docker does; other stages are 125.
    public var isExecFailure: Bool { stage == "exec" }

    public var description: String {
        var s = "sandbox setup failed at \(stage)"
        if let detail { s += " \(detail)" }
        if let errno { s += ": " + String(cString: strerror(errno)) }
        return s
    }
}
