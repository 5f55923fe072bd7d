import CAgentSandbox
import AgentSupport
import FoundationEssentials
import Glibc

/// Owns the C memory of one `agent_sandbox_plan`: every string, array and scratch buffer
/// the child reads after `clone`. Everything is allocated here, in the parent, because the
/// child must not call malloc. Freed when the arena goes away (after the clone returned:
/// the child has its own copy of the address space by then).
final class PlanArena {
    private var blocks: [UnsafeMutableRawPointer] = []
    var plan = agent_sandbox_plan()

    deinit { for b in blocks { free(b) } }

    func string(_ s: String) -> UnsafeMutablePointer<CChar> {
        let p = strdup(s)!
        blocks.append(UnsafeMutableRawPointer(p))
        return p
    }

    private func optionalString(_ s: String?) -> UnsafePointer<CChar>? {
        s.map { UnsafePointer(string($0)) }
    }

    func array<T>(_ count: Int, of: T.Type) -> UnsafeMutablePointer<T> {
        let raw = calloc(max(count, 1), MemoryLayout<T>.stride)!
        blocks.append(raw)
        return raw.bindMemory(to: T.self, capacity: max(count, 1))
    }

    /// A NULL-terminated `char *[]`.
    func stringArray(_ items: [String]) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> {
        let a = array(items.count + 1, of: UnsafeMutablePointer<CChar>?.self)
        for (i, s) in items.enumerated() { a[i] = string(s) }
        a[items.count] = nil
        return a
    }

    func bytes(_ b: [UInt8]) -> UnsafeMutablePointer<UInt8> {
        let a = array(b.count, of: UInt8.self)
        b.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { a.update(from: base, count: b.count) }
        }
        return a
    }

    /// Fills the plan's operations.
    func setOps(_ ops: [SetupOp]) {
        let cops = array(ops.count, of: agent_sandbox_op.self)
        for (i, op) in ops.enumerated() {
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
                    keys[k] = UnsafePointer(string(o.key))
                    values[k] = optionalString(o.value)
                }
                c.keys = UnsafePointer(keys)
                c.values = UnsafePointer(values)
                c.n_keys = op.options.count
            }
            if !op.contents.isEmpty {
                c.contents = UnsafePointer(bytes(op.contents))
                c.contents_len = op.contents.count
            }
            c.source_id = Self.identity(op.sourceID)
            if !op.layers.isEmpty {
                let layers = array(op.layers.count, of: agent_sandbox_layer.self)
                for (k, l) in op.layers.enumerated() {
                    layers[k] = agent_sandbox_layer(role: l.role.rawValue, path: UnsafePointer(string(l.path.path)),
                                                    id: Self.identity(l.path.identity))
                }
                c.layers = UnsafePointer(layers)
                c.n_layers = op.layers.count
            }
            c.mode = op.mode
            c.uid = op.uid
            c.gid = op.gid
            c.mount_flags = op.mountFlags
            cops[i] = c
        }
        plan.ops = UnsafePointer(cops)
        plan.n_ops = ops.count
        plan.op_fds = array(ops.count, of: Int32.self)
    }

    /// An image's snapshot folders, top first: the lower layers of the root overlay.
    func setRootfsLayers(_ paths: [HostPath]) {
        let layers = array(paths.count, of: agent_sandbox_layer.self)
        for (k, p) in paths.enumerated() {
            layers[k] = agent_sandbox_layer(role: Int32(AGENT_SANDBOX_LAYER_LOWER.rawValue), path: UnsafePointer(string(p.path)),
                                            id: Self.identity(p.identity))
        }
        plan.rootfs_layers = UnsafePointer(layers)
        plan.n_rootfs_layers = paths.count
    }

    /// The identity a path must still have in the child (verify = 0: a trusted path).
    static func identity(_ id: FileIdentity?) -> agent_sandbox_identity {
        guard let id else { return agent_sandbox_identity() }
        return agent_sandbox_identity(verify: 1, dev: id.device, ino: id.inode)
    }

    /// The value handed to the spawner; stays valid while the arena lives.
    func planPointer() -> UnsafeMutablePointer<agent_sandbox_plan> {
        let p = array(1, of: agent_sandbox_plan.self)
        p.pointee = plan
        return p
    }

    /// Fills the command part of the plan.
    func setCommand(_ c: ContainerConfiguration, capMask: UInt64, bpf: [UInt8]?) {
        plan.argv = UnsafePointer(stringArray(c.command))
        plan.envp = UnsafePointer(stringArray(c.environment))
        plan.cwd = UnsafePointer(string(c.workingDirectory))
        let path = c.environment.last(where: { $0.hasPrefix("PATH=") }).map { String($0.dropFirst(5)) }
            ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        plan.path_search = UnsafePointer(string(path))
        plan.scratch = UnsafeMutablePointer(array(2 * Int(PATH_MAX) + 16, of: CChar.self))
        plan.scratch_len = 2 * Int(PATH_MAX) + 16
        plan.uid = c.uid
        plan.gid = c.gid
        plan.cap_mask = capMask
        plan.last_cap = agent_sandbox_last_cap()
        let limits = array(c.rlimits.count, of: agent_sandbox_rlimit.self)
        for (i, l) in c.rlimits.enumerated() {
            limits[i] = agent_sandbox_rlimit(resource: Self.rlimitNumber(l.resource), soft: l.soft, hard: l.hard)
        }
        plan.rlimits = UnsafePointer(limits)
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
