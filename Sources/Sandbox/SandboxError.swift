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

    /// Set when the stage did not finish within its deadline (the container was killed and reaped).
    public var timeout: Duration?

    public init(stage: String, errno: Int32? = nil, detail: String? = nil) {
        self.stage = stage
        self.errno = errno
        self.detail = detail
    }

    /// `sandbox setup timed out at newuidmap after 10 s`.
    public static func timedOut(stage: String, after timeout: Duration) -> SandboxError {
        var e = SandboxError(stage: stage)
        e.timeout = timeout
        return e
    }

    /// "10", "0.25": seconds, without trailing zeros.
    static func seconds(_ d: Duration) -> String {
        let ms = d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
        if ms % 1000 == 0 { return String(ms / 1000) }
        var frac = String(ms % 1000)
        while frac.count < 3 { frac = "0" + frac }
        while frac.hasSuffix("0") { frac.removeLast() }
        return "\(ms / 1000).\(frac)"
    }

    /// True when the command itself could not be executed (not found, not executable):
    /// `agent exec` reports these with exit code 127/126 as Docker does; other stages are 125.
    public var isExecFailure: Bool { stage == "exec" }

    public var description: String {
        if let timeout { return "sandbox setup timed out at \(stage) after \(Self.seconds(timeout)) s" }
        var s = "sandbox setup failed at \(stage)"
        if let detail { s += " \(detail)" }
        if let errno { s += ": " + String(cString: strerror(errno)) }
        return s
    }
}
