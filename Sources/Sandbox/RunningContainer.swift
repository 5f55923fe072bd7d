import SandboxPolicy

/// A started container. Obtain one with `RunningContainer.start(_:)`.
///
/// STUB: signatures are the contract between the sandbox and the job runner;
/// the implementation lands with the sandbox work.
public final class RunningContainer: Sendable {
    /// Clones the container, sets it up and execs the command. Returns once the command
    /// is running (the shim's close-on-exec error pipe reached EOF), or throws the
    /// `SandboxError` naming the stage that failed.
    public static func start(_ configuration: ContainerConfiguration) async throws -> RunningContainer {
        throw SandboxError(stage: "not implemented")
    }

    /// The host pid of the container's init.
    public var pid: Int32 { 0 }

    /// Captured stdout/stderr chunks in arrival order (empty when output is `.inherit`).
    /// Finishes when both pipes reach EOF.
    public var output: AsyncStream<OutputChunk> { AsyncStream { $0.finish() } }

    /// Waits for the container to exit; enforces the configured timeout.
    /// Cancelling the waiting task terminates the container (SIGTERM, grace, SIGKILL).
    public func wait() async -> ContainerResult {
        fatalError("not implemented")
    }

    /// SIGTERM to the command (through the init), then SIGKILL to the whole container after `grace`.
    public func terminate(grace: Duration) {}

    /// Sends `signal` to the command through the init.
    public func signal(_ signal: Int32) {}
}
