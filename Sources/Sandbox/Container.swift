import SandboxPolicy

/// How the command ended.
public enum TerminationStatus: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    /// Shell convention: the exit code, or 128 + signal.
    public var shellExitCode: Int32 {
        switch self {
        case .exited(let c): return c
        case .signaled(let s): return 128 + s
        }
    }

    public var description: String {
        switch self {
        case .exited(let c): return "exit status \(c)"
        case .signaled(let s): return "killed by signal \(s)"
        }
    }
}

/// A chunk of the command's output, as it arrived.
public struct OutputChunk: Sendable {
    public enum Stream: String, Sendable { case stdout = "out", stderr = "err" }
    public var stream: Stream
    public var bytes: [UInt8]

    public init(stream: Stream, bytes: [UInt8]) {
        self.stream = stream
        self.bytes = bytes
    }
}

/// The result of a container that ran (set-up failures are thrown as `SandboxError` instead).
public struct ContainerResult: Sendable, Equatable {
    public var status: TerminationStatus
    /// The configured timeout expired and the container was terminated.
    public var timedOut: Bool
    /// How ids were mapped (`single` or `subordinate`).
    public var idMapping: ContainerConfiguration.IDMapping
    /// Wall-clock time from clone to the container's exit.
    public var duration: Duration

    public init(status: TerminationStatus, timedOut: Bool, idMapping: ContainerConfiguration.IDMapping, duration: Duration) {
        self.status = status
        self.timedOut = timedOut
        self.idMapping = idMapping
        self.duration = duration
    }
}
