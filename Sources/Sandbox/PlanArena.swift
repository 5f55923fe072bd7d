import CAgentSandbox
import AgentSupport
import FoundationEssentials
import Glibc

/// Builds one flat `agent_sandbox_plan`: every string, array and scratch buffer agent-init
/// reads, bump-allocated in ONE buffer whose first bytes are the plan itself. Every pointer
/// (in the plan and in what it points to) holds an offset from the buffer's start (0 = NULL),
/// so the buffer means the same wherever it is mapped: `sealedMemfd()` hands it to the
/// child as a sealed memfd, and agent-init relocates the offsets in one pass
/// (agent-init/main.c, sb_plan_relocate). The "pointers" this type returns are offsets too:
/// store them in plan fields, never dereference them.
final class PlanArena {
    private var buffer: UnsafeMutableRawPointer
    private var capacity: Int
    private var used: Int
    var plan = agent_sandbox_plan()

    init() {
        capacity = 16 * 1024
        buffer = calloc(capacity, 1)!
        // Offset 0 is the plan (and means NULL everywhere else).
        used = MemoryLayout<agent_sandbox_plan>.stride
        // Descriptor fields: 0 would be a descriptor (stdin), so "none" is -1.
        plan.join_user_fd = -1
        plan.join_net_fd = -1
    }

    deinit { free(buffer) }

    /// Reserves `size` zeroed bytes aligned to `align`; returns their offset.
    private func allocate(_ size: Int, align: Int) -> Int {
        let start = (used + align - 1) & ~(align - 1)
        let end = start + max(size, 1)
        if end > capacity {
            var c = capacity
            while c < end { c *= 2 }
            buffer = realloc(buffer, c)!
            memset(buffer + capacity, 0, c - capacity)
            capacity = c
        }
        used = end
        return start
    }

    private func store<T>(_ value: T, at offset: Int, index: Int = 0) {
        (buffer + offset + index * MemoryLayout<T>.stride).storeBytes(of: value, as: T.self)
    }

    /// An offset carried in a pointer field.
    private static func ref<T>(_ offset: Int) -> UnsafeMutablePointer<T> { UnsafeMutablePointer(bitPattern: offset)! }

    func string(_ s: String) -> UnsafeMutablePointer<CChar> {
        var utf8 = Array(s.utf8)
        utf8.append(0)
        let off = allocate(utf8.count, align: 1)
        utf8.withUnsafeBytes { (buffer + off).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return Self.ref(off)
    }

    private func optionalString(_ s: String?) -> UnsafePointer<CChar>? {
        s.map { UnsafePointer(string($0)) }
    }

    /// Room for `count` values of `T`; returns the offset.
    private func array<T>(_ count: Int, of: T.Type) -> Int {
        allocate(count * MemoryLayout<T>.stride, align: max(MemoryLayout<T>.alignment, 8))
    }

    /// A NULL-terminated `char *[]`.
    func stringArray(_ items: [String]) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> {
        let strings = items.map { string($0) }
        let a = array(items.count + 1, of: UnsafeMutablePointer<CChar>?.self)
        for (i, s) in strings.enumerated() { store(UInt(bitPattern: s), at: a, index: i) }
        return Self.ref(a)
    }

    func bytes(_ b: [UInt8]) -> UnsafeMutablePointer<UInt8> {
        let off = allocate(b.count, align: 8)
        b.withUnsafeBytes { if let base = $0.baseAddress { (buffer + off).copyMemory(from: base, byteCount: $0.count) } }
        return Self.ref(off)
    }

    /// Fills the plan's operations.
    func setOps(_ ops: [SetupOp]) {
        var cops: [agent_sandbox_op] = []
        cops.reserveCapacity(ops.count)
        for op in ops {
            var c = agent_sandbox_op()
            c.kind = op.kind.rawValue
            c.flags = op.flags
            c.source = optionalString(op.source)
            c.target = UnsafePointer(string(op.target))
            c.data = optionalString(op.data)
            if !op.options.isEmpty {
                let keys = array(op.options.count, of: UnsafePointer<CChar>?.self)
                let values = array(op.options.count, of: UnsafePointer<CChar>?.self)
                for (k, o) in op.options.enumerated() {
                    store(UInt(bitPattern: string(o.key)), at: keys, index: k)
                    store(UInt(bitPattern: optionalString(o.value)), at: values, index: k)
                }
                c.keys = UnsafePointer(Self.ref(keys) as UnsafeMutablePointer<UnsafePointer<CChar>?>)
                c.values = UnsafePointer(Self.ref(values) as UnsafeMutablePointer<UnsafePointer<CChar>?>)
                c.n_keys = op.options.count
            }
            if !op.contents.isEmpty {
                c.contents = UnsafePointer(bytes(op.contents))
                c.contents_len = op.contents.count
            }
            c.source_id = Self.identity(op.sourceID)
            if !op.layers.isEmpty {
                c.layers = UnsafePointer(layers(op.layers.map { ($0.role.rawValue, $0.path.path, $0.path.identity) }))
                c.n_layers = op.layers.count
            }
            c.mode = op.mode
            c.uid = op.uid
            c.gid = op.gid
            c.mount_flags = op.mountFlags
            cops.append(c)
        }
        let a = array(ops.count, of: agent_sandbox_op.self)
        for (i, c) in cops.enumerated() { store(c, at: a, index: i) }
        plan.ops = UnsafePointer(Self.ref(a) as UnsafeMutablePointer<agent_sandbox_op>)
        plan.n_ops = ops.count
        plan.op_fds = Self.ref(array(ops.count, of: Int32.self))
    }

    /// The outbound network's routes and rules (agent-init/net.c).
    func setRoutes(_ routes: [agent_sandbox_route]) {
        guard !routes.isEmpty else { return }
        let a = array(routes.count, of: agent_sandbox_route.self)
        for (i, r) in routes.enumerated() { store(r, at: a, index: i) }
        plan.routes = UnsafePointer(Self.ref(a) as UnsafeMutablePointer<agent_sandbox_route>)
        plan.n_routes = routes.count
    }

    /// An image's snapshot folders, top first: the lower layers of the root overlay.
    func setRootfsLayers(_ paths: [HostPath]) {
        guard !paths.isEmpty else { return }
        let lower = Int32(AGENT_SANDBOX_LAYER_LOWER.rawValue)
        plan.rootfs_layers = UnsafePointer(layers(paths.map { (lower, $0.path, $0.identity) }))
        plan.n_rootfs_layers = paths.count
    }

    /// A build's root: the lower layers (top first), then its host upper and work folders,
    /// which agent-init uses instead of the ones on its staging tmpfs.
    func setRootfsLayers(_ lower: [HostPath], upper: HostPath, work: HostPath) {
        let l = Int32(AGENT_SANDBOX_LAYER_LOWER.rawValue)
        let items = lower.map { (l, $0.path, $0.identity) }
            + [(Int32(AGENT_SANDBOX_LAYER_UPPER.rawValue), upper.path, upper.identity),
               (Int32(AGENT_SANDBOX_LAYER_WORK.rawValue), work.path, work.identity)]
        plan.rootfs_layers = UnsafePointer(layers(items))
        plan.n_rootfs_layers = items.count
    }

    /// An array of overlay layers (an op's; the plan's rootfs layers use it too).
    func layers(_ items: [(role: Int32, path: String, identity: FileIdentity?)]) -> UnsafeMutablePointer<agent_sandbox_layer> {
        let built = items.map { agent_sandbox_layer(role: $0.role, path: UnsafePointer(string($0.path)), id: Self.identity($0.identity)) }
        let a = array(built.count, of: agent_sandbox_layer.self)
        for (k, l) in built.enumerated() { store(l, at: a, index: k) }
        return Self.ref(a)
    }

    /// The identity a path must still have in the child (verify = 0: a trusted path).
    static func identity(_ id: FileIdentity?) -> agent_sandbox_identity {
        guard let id else { return agent_sandbox_identity() }
        return agent_sandbox_identity(verify: 1, dev: id.device, ino: id.inode)
    }

    /// The whole buffer (the plan at its start) as a sealed memfd, close-on-exec: what the
    /// child gets as its fd 7. The plan's descriptors and flags stay readable in `plan`.
    func sealedMemfd() throws -> Int32 {
        let fd = agent_sandbox_plan_memfd_empty()
        guard fd >= 0 else { throw SandboxError(stage: "plan memfd", errno: -fd) }
        do { try fill(fd) } catch { close(fd); throw error }
        return fd
    }

    /// Writes the plan into `fd`, an empty plan memfd (agent_sandbox_plan_memfd_empty), and
    /// seals it: for a child spawned before its plan was built.
    func fill(_ fd: Int32) throws {
        // A final NUL, so every string agent-init reads ends inside the buffer.
        _ = allocate(1, align: 1)
        plan.plan_size = UInt64(used)
        store(plan, at: 0)
        let rc = agent_sandbox_plan_memfd_fill(fd, buffer, used)
        guard rc == 0 else { throw SandboxError(stage: "plan memfd", errno: -rc) }
    }

    /// Bytes used so far (tests).
    var size: Int { used }

    /// Fills the command part of the plan.
    func setCommand(_ c: ContainerConfiguration, capMask: UInt64, bpf: [UInt8]?) {
        plan.argv = UnsafePointer(stringArray(c.command))
        plan.envp = UnsafePointer(stringArray(c.environment))
        plan.cwd = UnsafePointer(string(c.workingDirectory))
        let path = c.environment.last(where: { $0.hasPrefix("PATH=") }).map { String($0.dropFirst(5)) }
            ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        plan.path_search = UnsafePointer(string(path))
        plan.scratch_len = 2 * Int(PATH_MAX) + 16
        plan.scratch = Self.ref(array(plan.scratch_len, of: CChar.self))
        plan.uid = c.uid
        plan.gid = c.gid
        plan.cap_mask = capMask
        plan.last_cap = agent_sandbox_last_cap()
        let limits = array(c.rlimits.count, of: agent_sandbox_rlimit.self)
        for (i, l) in c.rlimits.enumerated() {
            store(agent_sandbox_rlimit(resource: Self.rlimitNumber(l.resource), soft: l.soft, hard: l.hard), at: limits, index: i)
        }
        plan.rlimits = UnsafePointer(Self.ref(limits) as UnsafeMutablePointer<agent_sandbox_rlimit>)
        plan.n_rlimits = c.rlimits.count
        if let bpf, !bpf.isEmpty {
            plan.bpf = UnsafePointer(bytes(bpf))
            plan.bpf_len = bpf.count
        }
    }

    /// RLIMIT_* numbers (the generic Linux values, same on x86_64 and aarch64).
    static func rlimitNumber(_ r: ResourceLimit.Resource) -> Int32 {
        switch r {
        case .cpu: return 0
        case .fsize: return 1
        case .stack: return 3
        case .core: return 4
        case .nproc: return 6
        case .nofile: return 7
        case .memlock: return 8
        case .as: return 9
        }
    }
}
