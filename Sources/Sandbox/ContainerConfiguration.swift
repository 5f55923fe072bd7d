import AgentSupport
import FoundationEssentials
import Glibc
import SandboxPolicy

/// Everything the parent needs to start one container, as a value.
///
/// The Swift side turns this into a flat, pre-allocated description that the
/// C shim (`CAgentSandbox`) executes after `clone` with raw syscalls only.
public struct ContainerConfiguration: Sendable, Equatable {
    /// Where the container's `/` comes from.
    public enum RootFilesystem: Sendable, Equatable {
        /// Read-only binds of the host's `/usr`, `/bin`, `/sbin`, `/lib*`, `/etc` on a fresh tmpfs root.
        case host
        /// A directory tree (busybox, debootstrap, an unpacked image): the read-only lower
        /// layer of an overlay whose upper layer is private to the container, so the folder
        /// itself is never written to (with `readOnlyRoot` false, writes are discarded).
        case directory(HostPath)
        /// An image: its unpacked layers (the agent's own snapshots), top first, as the
        /// read-only lower layers of that same overlay.
        case layers([HostPath])
        /// An image build's RUN: `lower` snapshots (top first) under a writable `upper` and
        /// its `work` folder on the host (one filesystem, `work` empty), so what the command
        /// changed stays in `upper` after the container is gone (`agent build` reads its
        /// new layer from there). Mount points the root lacks are made in `upper` too.
        case layersWithUpper(lower: [HostPath], upper: HostPath, work: HostPath)

        /// True for roots that come from a folder tree (not the host's binds).
        public var isTree: Bool {
            if case .host = self { return false }
            return true
        }
    }

    /// The container's network.
    public enum Network: String, Sendable, Equatable, CaseIterable {
        /// A new network namespace with only loopback, brought up.
        case none
        /// The agent's own network namespace (only when the policy allows it).
        case host
        /// A new network namespace with a way out through a user-mode stack (slirp4netns)
        /// attached from outside; host loopback, host addresses, link-local/metadata and
        /// denied CIDRs unreachable (see `OutboundNetwork`).
        case outbound
    }

    /// How ids inside map to the agent's ids outside.
    public enum IDMapping: Sendable, Equatable {
        /// `newuidmap`/`newgidmap` with the user's `/etc/subuid` range when available, else `.single`.
        case automatic
        /// One id: the agent's uid/gid appears as `uid`/`gid` inside; `setgroups` is denied.
        case single
        /// The agent's uid as 0 plus the subordinate range from `/etc/subuid` and `/etc/subgid`.
        case subordinate
    }

    /// Standard input of the command.
    public enum Input: Sendable, Equatable {
        case null
        /// The agent's own stdin (for interactive `agent exec`).
        case inherit
    }

    /// Standard output and error of the command.
    public enum Output: Sendable, Equatable {
        /// Captured; read it from `RunningContainer.output`.
        case pipe
        /// The agent's own stdout/stderr.
        case inherit
    }

    public var rootfs: RootFilesystem = .host
    /// Remount the root read-only after set-up (the default; tmpfs and rw binds stay writable).
    public var readOnlyRoot: Bool = true
    /// Caller mounts, applied in order after the root, `/proc` and `/dev` exist.
    public var mounts: [Mount] = []
    /// `argv`; `command[0]` without a `/` is looked up in the container's `PATH`.
    public var command: [String]
    /// Exactly the environment the command gets, as `KEY=VALUE`.
    public var environment: [String] = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    public var workingDirectory: String = "/"
    /// uid and gid the command runs as, inside the container.
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0
    public var idMapping: IDMapping = .automatic
    public var hostname: String = "sandbox"
    public var network: Network = .none
    /// With `network == .outbound`: the stack and its fences.
    public var outbound = OutboundNetwork()
    /// A job's shared network (`Pod`) the container joins instead of making its own network
    /// namespace: `network` must then be the pod's (`.none` or `.outbound`), and the ids are
    /// mapped as the pod's are (`idMapping` is not looked at).
    public var pod: Pod? = nil
    /// Names `/etc/hosts` resolves to 127.0.0.1 (service aliases in a pod), besides
    /// `localhost` and the hostname. Each is a DNS name (letters, digits, `-`, `.`).
    public var hostAliases: [String] = []
    public var rlimits: [ResourceLimit] = ResourceLimit.defaults
    /// Capabilities the command keeps (bounding, permitted, effective, inheritable).
    public var capabilities: CapabilitySet = .dockerDefault
    public var seccomp: SeccompPolicy = .projectDefault
    /// Where compiled BPF programs are kept between processes (compiling Docker's profile
    /// takes ~35 ms; a cache hit ~50 µs). Default `$XDG_CACHE_HOME/agent/seccomp`, else
    /// `~/.cache/agent/seccomp`; nil keeps the cache in memory only.
    public var seccompCacheDirectory: String? = SeccompCache.defaultDirectory()
    /// Wall-clock limit; on expiry SIGTERM to the command, SIGKILL to the container after `killGracePeriod`.
    public var timeout: Duration? = nil
    public var killGracePeriod: Duration = .seconds(10)
    /// Deadline of each set-up stage (the id-mapping helpers; clone to exec in the container):
    /// past it the container is killed and reaped, and the error names the stage.
    public var setupTimeout: Duration = .seconds(10)
    /// With `.pipe` output: bytes of output queued for the reader at most before the agent
    /// stops reading the pipes (backpressure; see `RunningContainer.output`).
    public var outputBufferBytes: Int = 1 << 20
    /// Running as real uid 0 is refused unless this is set; container root then maps to an unprivileged range.
    public var allowRoot: Bool = false
    /// Keep the container's mounts alive after the command exits, until `RunningContainer.release()`,
    /// so the caller can read files the command left in its tmpfs (test reports) through
    /// `RunningContainer.openRoot()`.
    public var keepAliveAfterExit: Bool = false
    public var stdin: Input = .null
    public var output: Output = .pipe

    public init(command: [String]) {
        self.command = command
    }
}

/// One mount requested by the caller. `target` is an absolute path inside the container,
/// resolved inside the new root without following symlinks out of it.
public struct Mount: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// Bind a host path (file or directory). Read-only remounts keep locked nosuid/nodev/noexec.
        case bind(source: HostPath, readOnly: Bool)
        /// A fresh tmpfs; `size` in bytes (nil: kernel default), `mode` of its root.
        case tmpfs(size: UInt64?, mode: UInt32)
        /// overlayfs mounted inside the user namespace: read-only `lower` layers (host paths,
        /// top first), writable `upper` and its `work` directory (host paths on one filesystem).
        /// With `upper` and `work` empty the overlay is read-only (it then needs two lowers).
        /// Every layer reaches overlayfs as an opened descriptor, never as a path in its options.
        case overlay(lower: [HostPath], upper: HostPath, work: HostPath)
        /// A file holding `contents` (e.g. a secret) on a tmpfs private to this container,
        /// bound read-only at `target`; it never touches disk. `uid`/`gid` are ids inside.
        case file(contents: [UInt8], mode: UInt32, uid: UInt32, gid: UInt32)
    }

    public var target: String
    public var kind: Kind

    public init(target: String, kind: Kind) {
        self.target = target
        self.kind = kind
    }

    public static func bind(_ source: String, _ target: String, readOnly: Bool = true) -> Mount {
        Mount(target: target, kind: .bind(source: HostPath(source), readOnly: readOnly))
    }

    public static func bind(_ source: HostPath, _ target: String, readOnly: Bool = true) -> Mount {
        Mount(target: target, kind: .bind(source: source, readOnly: readOnly))
    }

    public static func tmpfs(_ target: String, size: UInt64? = nil, mode: UInt32 = 0o1777) -> Mount {
        Mount(target: target, kind: .tmpfs(size: size, mode: mode))
    }
}

/// The identity of a file: what `fstat` says of an opened descriptor.
public struct FileIdentity: Sendable, Equatable, Hashable {
    public var device: UInt64
    public var inode: UInt64

    public init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }

    /// The identity of what `fd` refers to, or nil if `fstat` fails.
    public init?(descriptor fd: Int32) {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        self.init(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }
}

/// A host path the container mounts. A plain path (the host's `/usr`, the agent's own state)
/// is trusted and opened as written. One with an `identity` was admitted by descriptor: the
/// shim opens it without following any symlink and mounts it only if it is still that
/// inode, so a path swapped between admission and a later step is refused, never mounted.
public struct HostPath: Sendable, Equatable, ExpressibleByStringLiteral, CustomStringConvertible {
    public var path: String
    public var identity: FileIdentity?

    public init(_ path: String, identity: FileIdentity? = nil) {
        self.path = path
        self.identity = identity
    }

    public init(stringLiteral value: String) {
        self.init(value)
    }

    /// The path and identity of an opened descriptor (its canonical path, as the kernel
    /// reports it in `/proc/self/fd`), or nil if either cannot be read.
    public init?(descriptor fd: Int32) {
        guard let identity = FileIdentity(descriptor: fd) else { return nil }
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/fd/\(fd)", &buf, buf.count - 1)
        guard n > 0, buf[0] == CChar(UInt8(ascii: "/")) else { return nil }
        self.init(String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self), identity: identity)
    }

    public var description: String { path }
}

/// A resource limit applied with `setrlimit` in the child (cgroups are not delegated on
/// hosts like cgroup v1/hybrid without systemd, so rlimits are what can be enforced).
public struct ResourceLimit: Sendable, Equatable {
    public enum Resource: String, Sendable, Equatable, CaseIterable {
        case nofile, nproc, core, fsize, stack, `as`, cpu, memlock
    }

    public var resource: Resource
    public var soft: UInt64
    public var hard: UInt64

    public init(_ resource: Resource, soft: UInt64, hard: UInt64) {
        self.resource = resource
        self.soft = soft
        self.hard = hard
    }

    public init(_ resource: Resource, _ value: UInt64) {
        self.init(resource, soft: value, hard: value)
    }

    /// `core` = 0 always; `nofile` 1024/4096 as Docker sets; the rest inherited.
    public static let defaults: [ResourceLimit] = [
        ResourceLimit(.core, 0),
        ResourceLimit(.nofile, soft: 1024, hard: 4096),
    ]
}
