import AgentSupport
import FoundationEssentials
import Glibc

/// Moves volumes of the layout before scopes (`volumes/<name>/`) into scope `default`
/// (`volumes/default/<name>/`), once per state folder.
///
/// Before the marker `volumes/.scoped` exists, every entry of `volumes/` is an old volume,
/// since this code writes the marker before it creates any scope folder. An old volume may
/// itself be named `default`, so they are first gathered in `volumes/.migrating-default`
/// and that folder then becomes `volumes/default`. The steps run under an exclusive flock
/// and each one is a rename, so a crash at any point leaves a state the next call
/// finishes: entries not yet moved (no marker yet), or a staging folder left (marker set).
/// A step of an older agent binary that still holds an old volume keeps its bind (a rename
/// does not affect a mount); stop old agents before upgrading, or their next use of the
/// volume creates a new empty one under the old layout.
enum VolumeLayout {
    static let marker = ".scoped"
    static let staging = ".migrating-default"

    static func ensureScoped(_ state: StateDirectory) throws {
        let root = state.volumes
        // The common case, two stats: the marker is set and no staging folder is left. The
        // staging folder is made before the marker and renamed after it, so seeing the
        // marker and then no staging folder means the migration is over.
        if exists(root + "/" + marker) && !exists(root + "/" + staging) { return }
        let lock = try LockFile(path: state.locks + "/volumes-layout.lock")
        defer { lock.close() }
        try lock.lockNow(exclusive: true)
        if !exists(root + "/" + marker) {
            try StateDirectory.makeDirectory(root + "/" + staging, mode: 0o700)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
            for name in names where VolumeName.isValid(name) {
                guard rename(root + "/" + name, root + "/" + staging + "/" + name) == 0 else {
                    throw StateError(path: root + "/" + name, errno: errno, message: "cannot move the volume into scope \"default\"")
                }
            }
            let fd = open(root + "/" + marker, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
            guard fd >= 0 else { throw StateError(path: root + "/" + marker, errno: errno, message: "cannot create") }
            close(fd)
        }
        if exists(root + "/" + staging) {
            guard rename(root + "/" + staging, root + "/default") == 0 else {
                throw StateError(path: root + "/" + staging, errno: errno, message:
                    "cannot rename to \(root)/default (volumes of the layout before scopes); move its entries there by hand")
            }
        }
    }

    private static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }
}
