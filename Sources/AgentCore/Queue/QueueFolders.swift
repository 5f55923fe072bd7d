import AgentSupport
import CAgentSys
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// The queue's folders, opened once and used by descriptor from then on.
///
/// JOBS_DIR itself is the operator's path (symlinks in it are followed, once, at open);
/// each folder inside is created if missing and opened with `O_NOFOLLOW`, so a folder that
/// is a symlink is refused, and one swapped for a symlink later is never followed: every
/// read, write and rename of the queue goes through these descriptors.
public final class QueueFolders: Sendable {
    public let layout: QueueLayout
    let root: Int32
    let incoming: Int32
    let running: Int32
    let done: Int32
    let failed: Int32
    let cancel: Int32
    let work: Int32
    let attempts: Int32

    /// Opens (creating what is missing) every folder of `layout`. A path that exists but
    /// is not a directory, or is a symlink, is an error naming it.
    public init(_ layout: QueueLayout) throws {
        self.layout = layout
        var opened: [Int32] = []
        do {
            let root = try Self.openRoot(layout.root)
            opened.append(root)
            for name in QueueLayout.folderNames {
                opened.append(try Self.openFolder(root, name, shown: layout.root + "/" + name))
            }
        } catch {
            for fd in opened { close(fd) }
            throw error
        }
        (root, incoming, running, done, failed, cancel, work, attempts) =
            (opened[0], opened[1], opened[2], opened[3], opened[4], opened[5], opened[6], opened[7])
    }

    deinit {
        for fd in [root, incoming, running, done, failed, cancel, work, attempts] { close(fd) }
    }

    /// The path of `name` in the folder whose descriptor is `dir`, for messages only.
    func shown(_ dir: Int32, _ name: String) -> String {
        let folder: String
        switch dir {
        case incoming: folder = layout.incoming
        case running: folder = layout.running
        case done: folder = layout.done
        case failed: folder = layout.failed
        case cancel: folder = layout.cancel
        case work: folder = layout.work
        case attempts: folder = layout.attempts
        default: folder = layout.root
        }
        return folder + "/" + name
    }

    /// A path that reaches folder `dir` through this process's descriptor table rather than
    /// the file-system path: what the in-process runner is given for the results folder, so
    /// a `.work` swapped for a symlink cannot redirect where results are written.
    static func descriptorPath(_ dir: Int32, _ name: String) -> String {
        "/proc/self/fd/\(dir)/" + name
    }

    private static func openRoot(_ path: String) throws -> Int32 {
        if mkdir(path, 0o755) != 0 && errno != EEXIST {
            throw QueueError.layout(path: path, reason: "cannot create: " + String(cString: strerror(errno)))
        }
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 {
            let e = errno
            throw QueueError.layout(path: path, reason: e == ENOTDIR ? "exists but is not a directory"
                                                                     : "cannot open: " + String(cString: strerror(e)))
        }
        return fd
    }

    /// Opens `name` in `root` as a folder, creating it if missing.
    static func openFolder(_ root: Int32, _ name: String, shown: String) throws -> Int32 {
        if mkdirat(root, name, 0o755) != 0 && errno != EEXIST {
            throw QueueError.layout(path: shown, reason: "cannot create: " + String(cString: strerror(errno)))
        }
        let fd = openat(root, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 {
            let e = errno
            // ELOOP: a symlink; ENOTDIR: a file.
            let reason = (e == ELOOP || e == ENOTDIR) ? "exists but is not a directory"
                                                      : "cannot open: " + String(cString: strerror(e))
            throw QueueError.layout(path: shown, reason: reason)
        }
        return fd
    }
}

/// Which machine, and which boot of it, an agent runs on: `MACHINE-ID:BOOT-ID`.
///
/// Leases carry it to decide whether a lease's flock can be trusted. The host name cannot:
/// cloned VMs and containers often share one. `/etc/machine-id` tells machines apart (a
/// clone made before first boot gets its own), the kernel's boot id tells boots apart (and
/// two containers on one kernel share it, which is right: they see the same flocks).
public enum HostIdentity {
    /// This host's identity, read once.
    public static let current: String = make(
        machineID: firstLine("/etc/machine-id") ?? firstLine("/var/lib/dbus/machine-id"),
        bootID: firstLine("/proc/sys/kernel/random/boot_id"))

    /// Builds the identity; a part that cannot be read is replaced by something that never
    /// matches another agent's (a random value), so leases are then judged by heartbeat.
    static func make(machineID: String?, bootID: String?) -> String {
        (machineID ?? "unknown-" + QueueFS.randomToken(8)) + ":" + (bootID ?? "unknown-" + QueueFS.randomToken(8))
    }

    /// The first line of a small file (these are 33 and 37 bytes).
    private static func firstLine(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        if fd < 0 { return nil }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 256)
        let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        return n > 0 ? clean(Data(buf[0..<n])) : nil
    }

    private static func clean(_ data: Data) -> String? {
        let text = String(decoding: data, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
        let id = text.filter { $0.isLetter || $0.isNumber || $0 == "-" }
        return id.isEmpty ? nil : id
    }
}
