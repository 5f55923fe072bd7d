import AgentSupport
import FoundationEssentials
import Glibc
import Sandbox
import Synchronization

/// One running service: its container, the task that drains its output into
/// `logs/service-<alias>.log` (redacted, capped as step logs are), and the task that
/// waits for it to exit, so a crash is seen while the steps run.
final class RunningService: Sendable {
    let prepared: PreparedService
    let container: RunningContainer
    let log: StepLogWriter
    /// The secrets its entry names, as its container got them: its health-check commands
    /// get the same (a check like `pg_isready` may need the password), nobody else.
    let secretMounts: [Mount]
    let secretEnv: [String: String]
    private let pump: Task<Void, Never>
    private let monitor: Task<ContainerResult, Never>
    /// Shared with the monitor task (a class: a Mutex cannot be copied into it).
    private final class ExitState: Sendable {
        let m = Mutex<(stopping: Bool, result: ContainerResult?, exitedEarly: Bool, warned: Bool, diskBreach: String?)>((false, nil, false, false, nil))
    }
    private let exit = ExitState()
    private let disk: DiskGuard

    /// `disk` watches the state folder's free space while it runs (an image or rootfs
    /// service writes its root's upper layer there): below the reserve it is killed.
    init(prepared: PreparedService, container: RunningContainer, log: StepLogWriter, secrets: JobSecrets, disk: DiskGuard,
         secretMounts: [Mount], secretEnv: [String: String]) {
        self.secretMounts = secretMounts
        self.secretEnv = secretEnv
        self.prepared = prepared
        self.container = container
        self.log = log
        self.disk = disk
        // One redactor per stream, as for steps: a secret split across writes is still caught.
        pump = Task {
            var out = secrets.streamRedactor(), err = secrets.streamRedactor()
            for await chunk in container.output {
                let bytes = chunk.stream == .stdout ? out.process(chunk.bytes) : err.process(chunk.bytes)
                if !bytes.isEmpty { _ = log.append(stream: chunk.stream, bytes: bytes) }
            }
            let tailOut = out.flush(), tailErr = err.flush()
            if !tailOut.isEmpty { _ = log.append(stream: .stdout, bytes: tailOut) }
            if !tailErr.isEmpty { _ = log.append(stream: .stderr, bytes: tailErr) }
            _ = log.finish()
        }
        let box = exit
        monitor = Task {
            let guardTask = disk.watch(container)
            let r = await container.wait()
            guardTask.cancel()
            let breach = await guardTask.value
            box.m.withLock { s in
                s.result = r
                s.diskBreach = s.diskBreach ?? breach
                if !s.stopping { s.exitedEarly = true }
            }
            return r
        }
    }

    var alias: String { prepared.spec.alias }

    /// How it ended, if it has: nil while it runs.
    var result: ContainerResult? { exit.m.withLock { $0.result } }
    var exitedEarly: Bool { exit.m.withLock { $0.exitedEarly } }
    /// Why the disk guard killed it, if it did.
    var diskBreach: String? { exit.m.withLock { $0.diskBreach } }

    /// True once per early exit: the caller warns about it then.
    func takeExitWarning() -> ContainerResult? {
        exit.m.withLock { s in
            guard s.exitedEarly, !s.warned, let r = s.result else { return nil }
            s.warned = true
            return r
        }
    }

    /// SIGTERM, `grace`, SIGKILL; returns once it is reaped and its log is complete.
    func stop(grace: Duration) async -> ContainerResult {
        // Stopped while the disk is below the reserve: the guard's reason, whichever of the
        // job's guards noticed first (each polls on its own).
        let breach = disk.breach()
        exit.m.withLock { s in
            s.stopping = true
            if s.diskBreach == nil, s.result == nil { s.diskBreach = breach }
        }
        container.terminate(grace: grace)
        let r = await monitor.value
        await pump.value
        return r
    }

    static func describe(_ r: ContainerResult) -> String {
        switch r.status {
        case .exited(let code): return "exit code \(code)"
        case .signaled(let sig): return "signal \(sig)"
        }
    }
}
