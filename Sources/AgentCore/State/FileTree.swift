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
    /// Bytes on disk (allocated blocks) under `path`, counting hard links once; unreadable
    /// folders are skipped rather than failing the measurement.
    static func diskUsage(_ path: String) -> UInt64 {
        var seen = Set<[UInt64]>()
        var st = stat()
        guard lstat(path, &st) == 0 else { return 0 }
        return usage(parent: AT_FDCWD, name: path, device: st.st_dev, seen: &seen)
    }

    private static func usage(parent: Int32, name: String, device: dev_t, seen: inout Set<[UInt64]>) -> UInt64 {
        var st = stat()
        guard fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return 0 }
        let isDir = (st.st_mode & S_IFMT) == S_IFDIR
        if st.st_nlink > 1 && !isDir && !seen.insert([UInt64(st.st_dev), UInt64(st.st_ino)]).inserted { return 0 }
        var total = UInt64(st.st_blocks) * 512
        guard isDir, st.st_dev == device else { return total }
        let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return total }
        defer { close(fd) }
        for child in entries(fd) { total += usage(parent: fd, name: child, device: device, seen: &seen) }
        return total
    }

    /// Deletes `path` and everything under it, never following symlinks. Folders the agent
    /// owns but cannot write (Go's module cache makes them read-only) are made writable
    /// first. Returns false when something could not be deleted for lack of permission.
    @discardableResult
    static func removeTree(_ path: String) throws -> Bool {
        var st = stat()
        guard lstat(path, &st) == 0 else { return true }
        var denied = false
        remove(parent: AT_FDCWD, name: path, device: st.st_dev, denied: &denied)
        return !denied
    }

    private static func remove(parent: Int32, name: String, device: dev_t, denied: inout Bool) {
        var st = stat()
        guard fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            if unlinkat(parent, name, 0) != 0 && errno != ENOENT { denied = true }
            return
        }
        if st.st_uid == geteuid() && (st.st_mode & 0o700) != 0o700 {
            fchmodat(parent, name, (st.st_mode & 0o7777) | 0o700, 0)
        }
        if st.st_dev == device {
            let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if fd >= 0 {
                for child in entries(fd) { remove(parent: fd, name: child, device: device, denied: &denied) }
                close(fd)
            }
        }
        if unlinkat(parent, name, AT_REMOVEDIR) != 0 && errno != ENOENT { denied = true }
    }

    /// Names in the folder open at `fd`, without `.` and `..`; empty if unreadable.
    private static func entries(_ fd: Int32) -> [String] {
        let copy = dup(fd)
        guard copy >= 0, let dir = fdopendir(copy) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let e = readdir(dir) {
            let name = withUnsafePointer(to: &e.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
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
