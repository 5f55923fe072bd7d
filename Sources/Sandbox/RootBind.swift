import AgentSupport
import CAgentSandbox
import Glibc

/// Whether a read-only container root made from a folder can be the folder itself, bound
/// read-only (as bubblewrap's `--ro-bind DIR /`), instead of an overlay over it.
///
/// The overlay (upper and work on the container's staging tmpfs) exists so that the mount
/// points a folder lacks can be made without writing into the folder. When every step of the
/// plan that lands on the root itself finds its target already there, nothing needs making,
/// and a bind does the same job for less: no overlay superblock to create and tear down at
/// every start (measured 0.2-0.5 ms of CPU per `agent exec`). Any doubt keeps the overlay.
enum RootBind {
    /// `ops` in plan order; `root` the folder (with the identity agent-init will check).
    /// True only when every op that lands on the root (not beneath an earlier op's mount)
    /// either must not create its target (`noCreate`: skipped when missing, as on the
    /// overlay) or finds it present, resolved inside the folder exactly as agent-init
    /// resolves it; and none makes a folder or a link there (`mkdir` changes a mode, a
    /// symlink is a new entry: both write).
    static func possible(ops: [SetupOp], root: HostPath) -> Bool {
        let fd = openRoot(root)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var mounted: [String] = []
        for op in ops {
            defer { if [.bind, .mount, .overlay].contains(op.kind) { mounted.append(op.target) } }
            if mounted.contains(where: { op.target == $0 || op.target.hasPrefix($0 + "/") }) { continue }
            // Masks and read-only steps are noCreate by construction: a missing target is
            // skipped either way, and mounting over an entry of a read-only mount is allowed.
            if op.kind == .mkdir || op.kind == .symlink { return false }
            if op.flags & SetupOp.noCreate == 0 && !exists(op, in: fd) { return false }
        }
        return true
    }

    /// The folder as agent-init opens it (`sb_open_host`): an admitted one without following
    /// any symlink and still the inode the agent checked; a trusted one as is.
    private static func openRoot(_ root: HostPath) -> Int32 {
        guard let id = root.identity else { return open(root.path, O_PATH | O_DIRECTORY | O_CLOEXEC) }
        let fd = agent_resolve_open_nosymlinks(AT_FDCWD, root.path, O_PATH | O_DIRECTORY)
        guard fd >= 0 else { return -1 }
        var st = stat()
        guard fstat(fd, &st) == 0, UInt64(st.st_dev) == id.device, UInt64(st.st_ino) == id.inode else {
            close(fd)
            return -1
        }
        return fd
    }

    /// Whether the op's target resolves inside the folder the way `sb_resolve` resolves it
    /// (RESOLVE_IN_ROOT, no magic links; no symlinks at all for `noSymlinks`).
    private static func exists(_ op: SetupOp, in root: Int32) -> Bool {
        let fd = op.flags & SetupOp.noSymlinks != 0
            ? agent_resolve_open_in_root_nosymlinks(root, op.target, O_PATH, 0)
            : agent_resolve_open_in_root(root, op.target, O_PATH)
        guard fd >= 0 else { return false }
        close(fd)
        return true
    }
}
