import AgentSupport
import CAgentSys
import FoundationEssentials
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Rewrites a claimed job's lease every `interval`, on a thread of its own.
///
/// Not a Task: the cooperative pool has one thread per core, and the same pool runs
/// multi-second synchronous work (a cache GC walk, a workspace copy, a tree removal). With
/// every pool thread busy a Task-based heartbeat stops, and an agent on another host takes
/// the job for lost and runs it a second time. A thread sleeping in `poll` is woken by the
/// kernel whatever the pool does; its stop pipe ends it at once.
final class LeaseHeartbeat: @unchecked Sendable {
    private let stopWrite: Int32
    /// Held while a beat writes; `stopped` under it means no beat runs after `stop()`.
    private let mutex = Lock()
    private var stopped = false

    /// Starts beating; throws when no thread or pipe can be had (the caller then cannot
    /// keep the lease alive and must not run the job).
    init(store: QueueStore, job: ClaimedJob, interval: Duration, logger: Logger) throws {
        var fds: [Int32] = [-1, -1]
        guard agent_pipe_cloexec(&fds, 0) == 0 else {
            throw QueueError.io(operation: "pipe2", path: store.layout.leaseFile(job.id), errno: errno)
        }
        stopWrite = fds[1]
        let stopRead = fds[0]
        let millis = Int32(clamping: max(1, interval.milliseconds))
        do {
            try startDetachedThread { [self] in
                Self.loop(stopRead: stopRead, millis: millis) {
                    mutex.lock()
                    defer { mutex.unlock() }
                    if stopped { return }
                    do { try store.heartbeat(job) } catch {
                        logger.warning("heartbeat: lease not written", metadata: ["error": .string("\(error)")])
                    }
                }
                close(stopRead)
            }
        } catch {
            close(fds[0])
            close(fds[1])
            throw QueueError.io(operation: "pthread_create", path: store.layout.leaseFile(job.id), errno: error.errno)
        }
    }

    /// Beats until the stop pipe becomes readable (written to, or closed).
    private static func loop(stopRead: Int32, millis: Int32, beat: () -> Void) {
        var pfd = pollfd(fd: stopRead, events: Int16(POLLIN), revents: 0)
        var next = ContinuousClock.now + .milliseconds(Int64(millis))
        while true {
            let left = next - ContinuousClock.now
            let wait = left <= .zero ? 0 : Int32(clamping: max(1, left.milliseconds))
            pfd.revents = 0
            let r = poll(&pfd, 1, wait)
            if r < 0 { if errno == EINTR { continue }; return }
            if r > 0 { return }
            beat()
            next = ContinuousClock.now + .milliseconds(Int64(millis))
        }
    }

    /// Stops the thread; once it returns, no beat is running or will run (so a lease the
    /// caller removes next is never written again). Idempotent.
    func stop() {
        mutex.lock()
        defer { mutex.unlock() }
        if stopped { return }
        stopped = true
        close(stopWrite)
    }
}

extension Duration {
    /// Whole milliseconds (rounded down).
    var milliseconds: Int64 {
        let (s, atto) = components
        return s * 1000 + atto / 1_000_000_000_000_000
    }
}
