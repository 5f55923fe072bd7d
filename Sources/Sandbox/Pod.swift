import CAgentSandbox
import AgentSupport
import FoundationEssentials
import Glibc
import Synchronization

/// A job's network: one user namespace and the network namespace it owns, which several
/// containers join (`ContainerConfiguration.pod`), as the containers of a Kubernetes pod or
/// a GitLab job with `services:` do. Services and steps reach each other on 127.0.0.1 (and
/// by their aliases, through each container's `/etc/hosts`); each container keeps its own
/// mount, PID, IPC and UTS namespaces, its own nested user namespace (locked mounts) and its
/// own filesystem.
///
/// The agent holds the two namespaces by descriptor (`/proc/PID/ns/{user,net}` of a
/// short-lived holder opened while it waits on its sync pipe), so no process has to stay
/// alive for them; with `network: .outbound` the user-mode stack (slirp4netns) is attached
/// once, for the whole pod, and the holder installs the fences before it exits. The pod lives
/// until `close()` (or its deinit): its stack stops and its descriptors close; the kernel
/// frees the namespaces once the last container in them is gone.
public final class Pod: Sendable, Equatable {
    /// How to make a pod.
    public struct Configuration: Sendable, Equatable {
        /// `.none` (loopback only) or `.outbound` (a way out through the user-mode stack).
        public var network: ContainerConfiguration.Network = .none
        /// With `.outbound`: the stack and its fences.
        public var outbound = OutboundNetwork()
        /// The ids of every container of the pod (the pod's user namespace is mapped once).
        public var idMapping: ContainerConfiguration.IDMapping = .automatic
        public var allowRoot = false
        /// Deadline of each set-up stage (id-mapping helpers, the stack, the holder).
        public var setupTimeout: Duration = .seconds(10)

        public init(network: ContainerConfiguration.Network = .none, outbound: OutboundNetwork = OutboundNetwork(),
                    idMapping: ContainerConfiguration.IDMapping = .automatic) {
            self.network = network
            self.outbound = outbound
            self.idMapping = idMapping
        }
    }

    public let configuration: Configuration
    /// How ids are mapped in the pod (`single` or `subordinate`, never `automatic`).
    public let idMapping: ContainerConfiguration.IDMapping
    let ids: IDMapPlan
    let stack: NetworkStack?
    /// The pod's user and network namespaces (O_CLOEXEC descriptors); -1 once closed.
    private let fds: Mutex<(user: Int32, net: Int32)>

    init(configuration: Configuration, ids: IDMapPlan, userFD: Int32, netFD: Int32, stack: NetworkStack?) {
        self.configuration = configuration
        self.ids = ids
        self.idMapping = ids.reported
        self.stack = stack
        self.fds = Mutex((userFD, netFD))
    }

    deinit { close() }

    public static func == (a: Pod, b: Pod) -> Bool { a === b }

    /// The user-mode stack of an outbound pod (`slirp4netns`), nil otherwise.
    public var networkStack: String? { stack?.name }

    /// The namespaces' descriptors, while the pod is open.
    func namespaces() throws(SandboxError) -> (user: Int32, net: Int32) {
        let f = fds.withLock { $0 }
        guard f.user >= 0, f.net >= 0 else { throw SandboxError(stage: "pod", detail: "(the job's network was already closed)") }
        return f
    }

    /// Close-on-exec copies of the namespaces' descriptors (the caller closes them), nil once closed.
    func duplicateNamespaces() -> (user: Int32, net: Int32)? {
        fds.withLock { f -> (user: Int32, net: Int32)? in
            guard f.user >= 0, f.net >= 0 else { return nil }
            let u = fcntl(f.user, F_DUPFD_CLOEXEC, 3)
            let n = fcntl(f.net, F_DUPFD_CLOEXEC, 3)
            guard u >= 0, n >= 0 else {
                if u >= 0 { Glibc.close(u) }
                if n >= 0 { Glibc.close(n) }
                return nil
            }
            return (u, n)
        }
    }

    /// Stops the stack and closes the namespaces' descriptors. Containers still running in
    /// the pod keep its namespaces (and lose the way out). Idempotent.
    public func close() {
        let f = fds.withLock { f -> (Int32, Int32) in defer { f = (-1, -1) }; return f }
        if f.0 >= 0 { Glibc.close(f.0) }
        if f.1 >= 0 { Glibc.close(f.1) }
        stack?.stop()
    }
}
