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

    /// With `keepAliveAfterExit`: a directory descriptor of the container's `/` (via the init's
    /// `/proc/PID/root`), valid until `release()`. Open paths under it with `openat2` and
    /// `RESOLVE_IN_ROOT` so a symlink planted by the job cannot lead out of the container.
    /// The caller closes the descriptor.
    public func openRoot() throws -> Int32 { throw SandboxError(stage: "not implemented") }

    /// With `keepAliveAfterExit`: lets the init exit and the container's mounts go away.
    public func release() {}
}
