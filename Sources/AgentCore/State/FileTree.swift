import AgentSupport
import FoundationEssentials
import Glibc
import Sandbox

/// Measuring and deleting trees that a container wrote, without following symlinks.
///
/// When a job maps a range of subordinate uids, files in a cache may belong to ids the
/// agent cannot act on from outside; measuring skips what it cannot read, and deletion
/// falls back to a user namespace with the same mapping (`removeInUserNamespace`).
enum FileTree {
    /// Bytes on disk (allocated blocks) under `path`, counting hard links once, without
    /// following symlinks or leaving the file system. Folders the agent owns but cannot read
    /// (a job's `chmod 000`) are made readable for the walk and get their mode back after;
    /// folders of other (subordinate) uids that it cannot read are skipped.
    static func diskUsage(_ path: String) -> UInt64 {
        var seen = Set<[UInt64]>()
        var total: UInt64 = 0
        var device: dev_t?
        var restore: [[UInt64]: mode_t] = [:]
        let uid = geteuid()
        var walk = TreeWalk(visit: { _, _, st, _ in
            let isDir = (st.st_mode & S_IFMT) == S_IFDIR
            if device == nil { device = st.st_dev }
            if st.st_nlink > 1 && !isDir && !seen.insert([UInt64(st.st_dev), UInt64(st.st_ino)]).inserted { return false }
            total += UInt64(st.st_blocks) * 512
            return isDir && st.st_dev == device
        })
        walk.open = { parent, name, st in
            let fd = TreeWalk.openDirectory(parent, name)
            guard fd < 0, errno == EACCES, st.st_uid == uid else { return fd }
            guard fchmodat(parent, name, (st.st_mode & 0o7777) | 0o500, 0) == 0 else { return -1 }
            restore[[UInt64(st.st_dev), UInt64(st.st_ino)]] = st.st_mode & 0o7777
            return TreeWalk.openDirectory(parent, name)
        }
        walk.leave = { parent, name, st, _ in
            if let mode = restore.removeValue(forKey: [UInt64(st.st_dev), UInt64(st.st_ino)]) {
                fchmodat(parent, name, mode, 0)
            }
        }
        walk.run(path)
        return total
    }

    /// Deletes `path` and everything under it, never following symlinks, iteratively (any
    /// depth). Folders the agent owns but cannot read or write (Go's module cache makes them
    /// read-only, a job may `chmod 000`) are made accessible first. Returns false when
    /// something could not be deleted for lack of permission.
    @discardableResult
    static func removeTree(_ path: String) throws -> Bool {
        var denied = false
        var device: dev_t?
        let uid = geteuid()
        var walk = TreeWalk(visit: { parent, name, st, _ in
            if device == nil { device = st.st_dev }
            guard (st.st_mode & S_IFMT) == S_IFDIR else {
                if unlinkat(parent, name, 0) != 0 && errno != ENOENT { denied = true }
                return false
            }
            if st.st_uid == uid && (st.st_mode & 0o700) != 0o700 {
                fchmodat(parent, name, (st.st_mode & 0o7777) | 0o700, 0)
            }
            // Another file system mounted below (should not happen) is not descended into.
            if st.st_dev != device {
                if unlinkat(parent, name, AT_REMOVEDIR) != 0 && errno != ENOENT { denied = true }
                return false
            }
            return true
        })
        walk.leave = { parent, name, _, _ in
            if unlinkat(parent, name, AT_REMOVEDIR) != 0 && errno != ENOENT { denied = true }
        }
        walk.run(path)
        return !denied
    }

    /// Deletes the contents of `path` from inside a user namespace that maps the agent's
    /// subordinate id range (container root has CAP_DAC_OVERRIDE/CAP_FOWNER over those ids),
    /// then deletes what is left from outside. Used when files belong to mapped uids.
    static func removeInUserNamespace(_ path: String) async throws {
        var config = ContainerConfiguration(command: ["/usr/bin/find", "/target", "-xdev", "-mindepth", "1", "-delete"])
        config.idMapping = .subordinate
        config.mounts = [.bind(path, "/target", readOnly: false)]
        config.network = .none
        config.timeout = .seconds(600)
        let container = try await RunningContainer.start(config)
        let drain = Task { for await _ in container.output {} }
        let result = await container.wait()
        _ = await drain.value
        guard result.status == .exited(0) else {
            throw StateError(path: path, message: "deleting inside a user namespace failed (\(result.status))")
        }
        if try !removeTree(path) {
            throw StateError(path: path, errno: EACCES, message: "cannot delete")
        }
    }

    /// `removeTree`, then the user-namespace fallback for what permission kept.
    static func removeTreeFully(_ path: String) async throws {
        if try removeTree(path) { return }
        try await removeInUserNamespace(path)
    }
}
