import CAgentSandbox
import AgentSupport
import FoundationEssentials
import Glibc
import Synchronization

/// A container's child spawned ahead of its configuration: `agent exec` makes one as soon as
/// its flags are parsed, so the two setuid id-mapping helpers (newuidmap/newgidmap) run
/// while the agent reads its policy, admits the host paths, loads the seccomp program and
/// builds the plan, instead of after all that. The child has exec'd agent-init and waits on
/// its sync socket with an empty plan: nothing of the container runs until the plan,
/// built from the admitted configuration, is sealed in and the sync byte sent
/// (`RunningContainer.runOnThisThread(_:reservation:...)`).
///
/// Made only for what every policy allows (`--network none`, this user's own subordinate
/// ids; not as root), and taken only by a configuration of the same shape (stdin, output,
/// network, id mapping), else killed and reaped and the container started as always.
/// Use it from the thread that made it (the child's parent thread, PR_SET_PDEATHSIG).
public final class ContainerReservation: @unchecked Sendable {
    private let state: Mutex<SpawnedChild?>

    private init(child: SpawnedChild) { state = Mutex(child) }

    deinit { cancel() }

    /// Spawns the child for a container with `stdin`, inherited output, `--network none` and
    /// `idMapping`, or returns nil when that would save nothing (single mapping: no helpers
    /// to hide) or cannot be done now (the start then reports its error as always).
    public static func start(stdin: ContainerConfiguration.Input, idMapping: ContainerConfiguration.IDMapping,
                             hostname: String = "sandbox") -> ContainerReservation? {
        guard getuid() != 0, idMapping != .single else { return nil }
        var c = ContainerConfiguration(command: ["reserved"])
        c.stdin = stdin
        c.output = .inherit
        c.network = .none
        c.idMapping = idMapping
        c.hostname = hostname
        guard let ids = try? IDMapPlan.forCurrentUser(c), case .helpers = ids.method else { return nil }
        let launcher = Launcher(configuration: c, ids: ids, plan: .none, bpf: nil)
        guard let child = try? launcher.spawnChild() else { return nil }
        return ContainerReservation(child: child)
    }

    /// The child, once: the launcher takes it (or abandons it if the shapes differ).
    func take() -> SpawnedChild? { state.withLock { s in defer { s = nil }; return s } }

    /// Kills and reaps the child and its helpers, if not taken. Idempotent.
    public func cancel() { take()?.abandon() }
}
