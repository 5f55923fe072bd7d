import AgentSupport
import FoundationEssentials
import Glibc

/// One set-up step the shim performs inside the new root, as a Swift value.
/// `SetupPlan` lists them in order; `PlanArena` turns them into C structs.
struct SetupOp: Sendable, Equatable {
    enum Kind: Int32, Sendable { case mkdir = 1, symlink, bind, mount, overlay, file, mask, readonly }
    enum LayerRole: Int32, Sendable { case lower = 1, upper, work }

    static let readOnly: UInt32 = 0x1
    static let file: UInt32 = 0x2
    static let noSymlinks: UInt32 = 0x4
    static let noCreate: UInt32 = 0x8
    /// A device bind: keeps device access (every other bind is nosuid,nodev).
    static let device: UInt32 = 0x10
    /// Skipped when the target is missing and cannot be created (a root-owned rootfs tree).
    static let optional: UInt32 = 0x20

    var kind: Kind
    var flags: UInt32 = 0
    /// Host path (bind) or filesystem type (mount).
    var source: String? = nil
    /// Relative to the new root, normalised ("proc/sys").
    var target: String
    var data: String? = nil
    var options: [(key: String, value: String?)] = []
    var contents: [UInt8] = []
    /// bind: the identity the source must still have (admitted paths).
    var sourceID: FileIdentity? = nil
    /// overlay: the layers, lower ones first (top first), then upper and work.
    var layers: [(role: LayerRole, path: HostPath)] = []
    var mode: UInt32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
    var mountFlags: UInt = 0

    /// How errors name this step: `mount /workspace`, `mask /proc/kcore`, ...
    var label: String {
        let verb: String
        switch kind {
        case .mkdir: verb = "mkdir"
        case .symlink: verb = "symlink"
        case .mask: verb = "mask"
        case .readonly: verb = "read-only"
        default: verb = "mount"
        }
        return "\(verb) /\(target)"
    }

    static func == (a: SetupOp, b: SetupOp) -> Bool {
        a.kind == b.kind && a.flags == b.flags && a.source == b.source && a.target == b.target
            && a.data == b.data && a.options.map { "\($0.key)=\($0.value ?? "")" } == b.options.map { "\($0.key)=\($0.value ?? "")" }
            && a.contents == b.contents && a.sourceID == b.sourceID
            && a.layers.map { "\($0.role.rawValue)=\($0.path.path)" } == b.layers.map { "\($0.role.rawValue)=\($0.path.path)" }
            && a.mode == b.mode && a.uid == b.uid && a.gid == b.gid
            && a.mountFlags == b.mountFlags
    }
}

/// Mount flags (MS_*) the plan uses; spelled out because Glibc imports them inconsistently.
enum MountFlag {
    static let rdonly: UInt = 0x1
    static let nosuid: UInt = 0x2
    static let nodev: UInt = 0x4
    static let noexec: UInt = 0x8
}

/// The ordered set-up steps for one configuration (pure; unit-testable).
struct SetupPlan: Sendable, Equatable {
    var ops: [SetupOp] = []

    /// No operations: a reserved child's launcher, which builds no plan (ContainerReservation).
    static let none = SetupPlan(ops: [])

    private init(ops: [SetupOp]) { self.ops = ops }

    /// Host directories a `.host` rootfs shows read-only; symlinks (merged /usr) are recreated.
    static let hostRootEntries = ["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc"]

    /// OCI default masked paths: files get /dev/null, directories an empty read-only tmpfs.
    static let maskedPaths = [
        "proc/acpi", "proc/asound", "proc/kcore", "proc/keys", "proc/latency_stats",
        "proc/timer_list", "proc/timer_stats", "proc/sched_debug", "proc/scsi",
        "sys/firmware", "sys/devices/virtual/powercap",
    ]
    /// OCI default read-only paths.
    static let readOnlyPaths = ["proc/bus", "proc/fs", "proc/irq", "proc/sys", "proc/sysrq-trigger"]
    static let devices = ["null", "zero", "full", "random", "urandom", "tty"]

    /// Normalises an absolute container path to the shim's relative form; rejects `..`.
    static func relativeTarget(_ path: String, what: String) throws -> String {
        guard path.hasPrefix("/") else {
            throw SandboxError(stage: "\(what) \(path)", detail: "(the target must be an absolute path)")
        }
        var parts: [Substring] = []
        for c in path.split(separator: "/", omittingEmptySubsequences: true) where c != "." {
            if c == ".." { throw SandboxError(stage: "\(what) \(path)", detail: "(the target must not contain ..)") }
            parts.append(c)
        }
        return parts.joined(separator: "/")
    }

    /// Builds the steps. `lstat` is injectable so unit tests do not depend on the host's layout.
    init(
        configuration c: ContainerConfiguration,
        agentBinary: String? = nil,
        hostEntry: (String) -> HostEntry = SetupPlan.lstatHost
    ) throws {
        let sys = MountFlag.nosuid | MountFlag.nodev | MountFlag.noexec
        if case .host = c.rootfs {
            for name in Self.hostRootEntries {
                switch hostEntry("/" + name) {
                case .directory:
                    ops.append(SetupOp(kind: .bind, flags: SetupOp.readOnly, source: "/" + name, target: name))
                case .symlink(let dest):
                    ops.append(SetupOp(kind: .symlink, target: name, data: dest))
                case .missing:
                    break
                }
            }
            ops.append(SetupOp(kind: .mkdir, target: "tmp", mode: 0o1777))
        }
        ops.append(SetupOp(kind: .mount, flags: SetupOp.noSymlinks, source: "proc", target: "proc", mountFlags: sys))
        ops.append(SetupOp(kind: .mount, flags: SetupOp.noSymlinks, source: "tmpfs", target: "dev",
                           data: "mode=0755,size=65536", mountFlags: MountFlag.nosuid | MountFlag.noexec))
        for d in Self.devices {
            ops.append(SetupOp(kind: .bind, flags: SetupOp.file | SetupOp.noSymlinks | SetupOp.device, source: "/dev/" + d, target: "dev/" + d))
        }
        ops.append(SetupOp(kind: .mount, flags: SetupOp.noSymlinks, source: "devpts", target: "dev/pts",
                           data: "newinstance,ptmxmode=0666,mode=0620", mountFlags: MountFlag.nosuid | MountFlag.noexec))
        ops.append(SetupOp(kind: .mount, flags: SetupOp.noSymlinks, source: "tmpfs", target: "dev/shm",
                           data: "mode=1777", mountFlags: sys))
        for (name, dest) in [("ptmx", "pts/ptmx"), ("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")] {
            ops.append(SetupOp(kind: .symlink, flags: SetupOp.noSymlinks, target: "dev/" + name, data: dest))
        }
        if c.network != .host {
            // sysfs shows the network namespace it was mounted in; only ours is safe to show.
            // Optional in a directory rootfs: /sys may not exist there and need not be created.
            var sysFlags = SetupOp.noSymlinks
            if c.rootfs.isTree { sysFlags |= SetupOp.noCreate }
            ops.append(SetupOp(kind: .mount, flags: sysFlags, source: "sysfs", target: "sys",
                               mountFlags: sys | MountFlag.rdonly))
        }
        for m in Self.maskedPaths where c.network != .host || !m.hasPrefix("sys/") {
            ops.append(SetupOp(kind: .mask, flags: SetupOp.noSymlinks | SetupOp.noCreate, target: m))
        }
        for r in Self.readOnlyPaths {
            ops.append(SetupOp(kind: .readonly, flags: SetupOp.noSymlinks | SetupOp.noCreate, target: r))
        }
        if c.network == .outbound || c.pod != nil { ops += Self.networkFiles(c) }
        // Caller targets must not pass through any symlink (a job can plant one in a
        // volume or rootfs between runs); the shim also resolves them inside the root.
        for m in c.mounts {
            var op = try Self.op(for: m)
            op.flags |= SetupOp.noSymlinks
            ops.append(op)
        }
        // The agent's own binary never shows inside, even when it lives under a host bind.
        if case .host = c.rootfs, let bin = agentBinary,
           Self.hostRootEntries.contains(where: { bin.hasPrefix("/\($0)/") }) {
            ops.append(SetupOp(kind: .mask, flags: SetupOp.noCreate, target: try Self.relativeTarget(bin, what: "mask")))
        }
    }

    /// The container's own `/etc/resolv.conf` (the stack's resolver) and `/etc/hosts`, as
    /// read-only files on its private tmpfs. An image's or rootfs's path is resolved without
    /// symlinks (a job could point it anywhere in the container); the host's `/etc` may hold a
    /// link (systemd-resolved's resolv.conf), followed inside the new root only. A tree whose
    /// `/etc` lacks the file and belongs to someone else (host root) keeps its own lookup:
    /// nothing can be created there from inside.
    /// In a pod the service aliases resolve to 127.0.0.1 (the pod's shared loopback); a pod
    /// without a way out gets no resolv.conf of ours (there is no resolver to name).
    static func networkFiles(_ c: ContainerConfiguration) -> [SetupOp] {
        let flags = SetupOp.file | SetupOp.optional | (c.rootfs.isTree ? SetupOp.noSymlinks : 0)
        let outbound = c.network == .outbound
        var hosts = "127.0.0.1\tlocalhost" + c.hostAliases.map { "\t" + $0 }.joined() + "\n"
            + "::1\tlocalhost ip6-localhost ip6-loopback\n"
        hosts += outbound
            ? "\(OutboundNetwork.address)\t\(c.hostname)\n\(OutboundNetwork.gateway)\t\(OutboundNetwork.hostName)\n"
            : "127.0.1.1\t\(c.hostname)\n"
        var files = [("etc/hosts", hosts)]
        if outbound { files.append(("etc/resolv.conf", "nameserver \(OutboundNetwork.resolver)\n")) }
        return files.map { target, text in
            SetupOp(kind: .file, flags: flags, target: target, contents: Array(text.utf8), mode: 0o644, uid: c.uid, gid: c.gid)
        }
    }

    static func op(for m: Mount) throws -> SetupOp {
        let t = try relativeTarget(m.target, what: "mount")
        guard !t.isEmpty else { throw SandboxError(stage: "mount /", detail: "(cannot mount over the container's root)") }
        switch m.kind {
        case .bind(let source, let ro):
            guard source.path.hasPrefix("/") else {
                throw SandboxError(stage: "mount \(m.target)", detail: "(bind source \(source) must be an absolute path)")
            }
            // A source that is not a directory (or does not exist yet: the shim reports that
            // at its stage) is bound onto a file target.
            var st = stat()
            var flags: UInt32 = ro ? SetupOp.readOnly : 0
            if stat(source.path, &st) == 0 && (st.st_mode & S_IFMT) != S_IFDIR { flags |= SetupOp.file }
            return SetupOp(kind: .bind, flags: flags, source: source.path, target: t, sourceID: source.identity)
        case .tmpfs(let size, let mode):
            var data = "mode=" + String(mode, radix: 8)
            if let size { data += ",size=\(size)" }
            return SetupOp(kind: .mount, source: "tmpfs", target: t, data: data, mountFlags: MountFlag.nosuid | MountFlag.nodev)
        case .overlay(let lower, let upper, let work):
            var layers: [(role: SetupOp.LayerRole, path: HostPath)] = lower.map { (.lower, $0) }
            // No upper layer: overlayfs mounts the (two or more) lowers read-only.
            if !upper.path.isEmpty { layers += [(.upper, upper), (.work, work)] }
            return SetupOp(kind: .overlay, target: t, options: [("userxattr", nil)], layers: layers)
        case .file(let contents, let mode, let uid, let gid):
            return SetupOp(kind: .file, flags: SetupOp.file, target: t, contents: contents, mode: mode, uid: uid, gid: gid)
        }
    }

    enum HostEntry: Equatable { case directory, symlink(String), missing }

    static func lstatHost(_ path: String) -> HostEntry {
        var st = stat()
        guard lstat(path, &st) == 0 else { return .missing }
        if (st.st_mode & S_IFMT) == S_IFLNK {
            var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlink(path, &buf, buf.count - 1)
            guard n > 0 else { return .missing }
            return .symlink(String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return (st.st_mode & S_IFMT) == S_IFDIR ? .directory : .missing
    }
}
