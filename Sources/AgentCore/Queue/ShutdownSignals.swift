import AgentSupport
import CAgentSys
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// The write end of the self-pipe the signal handler writes to (set once, before the
/// handler is installed; the handler only reads it).
nonisolated(unsafe) private var signalPipeWriteFD: Int32 = -1

/// SIGTERM and SIGINT as an async stream, for `agent watch`.
///
/// Why a handler and a self-pipe rather than `SIG_IGN` + a DispatchSource, or a blocked
/// signal + signalfd: an ignored disposition and a blocked mask are both inherited across
/// exec, so every job process would start unable to receive the SIGTERM its runner sends
/// on cancel. A caught signal is reset to its default at exec.
public enum ShutdownSignals {
    /// Installs the handlers (once per process) and returns a stream that yields the
    /// signal number of each SIGTERM/SIGINT received.
    public static func stream() throws -> AsyncStream<Int32> {
        // Close-on-exec in the same call (pipe2), so no job started meanwhile inherits it.
        var fds: [Int32] = [0, 0]
        if agent_pipe_cloexec(&fds, 0) != 0 { throw QueueError.io(operation: "pipe2", path: "signal pipe", errno: errno) }
        // Only the write end is non-blocking: a full pipe drops the byte in the handler.
        _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
        signalPipeWriteFD = fds[1]
        let (stream, continuation) = AsyncStream<Int32>.makeStream()
        let readFD = fds[0]
        try? startDetachedThread {
            var byte: UInt8 = 0
            while true {
                let n = Glibc.read(readFD, &byte, 1)
                if n == 1 { continuation.yield(Int32(byte)); continue }
                if n < 0 && errno == EINTR { continue }
                break
            }
            continuation.finish()
        }
        for sig in [SIGTERM, SIGINT] {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { sig in
                var byte = UInt8(truncatingIfNeeded: sig)
                // write(2) is async-signal-safe; a full pipe just drops the byte.
                _ = write(signalPipeWriteFD, &byte, 1)
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            if sigaction(sig, &action, nil) != 0 {
                throw QueueError.io(operation: "sigaction", path: "signal \(sig)", errno: errno)
            }
        }
        return stream
    }
}
