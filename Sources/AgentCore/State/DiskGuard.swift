import FoundationEssentials
import Glibc
import Sandbox

/// Keeps a container from filling the state folder's filesystem: a job step's workspace and
/// root layers and a build RUN's upper folder are host folders there, which no quota bounds
/// for an unprivileged agent (rootless overlayfs has none, and the disk is the host's). So
/// while the container runs, the filesystem's free space (`statvfs`, what an unprivileged
/// user may still use) is read every `interval`; once it falls below the policy's
/// `minFreeDiskBytes` the container is killed and the caller fails its step or RUN with
/// the message. A bound on the host, not a per-job quota: whatever brings the disk below
/// the reserve is stopped, and nothing of the job can write past it by more than what it
/// writes in one interval.
public struct DiskGuard: Sendable {
    /// A folder on the watched filesystem (the state folder).
    public var path: String
    public var reserveBytes: UInt64
    public var interval: Duration = .milliseconds(200)

    public init(path: String, reserveBytes: UInt64) {
        self.path = path
        self.reserveBytes = reserveBytes
    }

    /// Bytes an unprivileged user may still write on `path`'s filesystem, nil if unknown.
    public static func freeBytes(_ path: String) -> UInt64? {
        var s = statvfs()
        guard statvfs(path, &s) == 0 else { return nil }
        return UInt64(s.f_bavail) &* UInt64(s.f_frsize)
    }

    /// Why the container must stop now, nil while there is room.
    func breach() -> String? {
        guard reserveBytes > 0, let free = Self.freeBytes(path), free < reserveBytes else { return nil }
        return "the disk of the state folder has \(free) bytes free, below the policy's minFreeDiskBytes (\(reserveBytes)): the container was killed"
    }

    /// Watches `container` until the task is cancelled (once the container is gone): on a
    /// breach it kills the whole container and returns the reason.
    public func watch(_ container: RunningContainer) -> Task<String?, Never> {
        let g = self
        return Task.detached {
            guard g.reserveBytes > 0 else { return nil }
            while !Task.isCancelled {
                if let why = g.breach() {
                    container.signal(SIGKILL)
                    return why
                }
                try? await Task.sleep(for: g.interval)
            }
            return nil
        }
    }
}
