import Foundation
import Testing
@testable import Sandbox

/// `RootBind.possible`: when a read-only folder root may be the folder itself, bound
/// read-only, rather than an overlay. Any step that would have to create something on the
/// root keeps the overlay.
@Suite struct RootBindDecisionTests {
    /// A folder with `entries` (a trailing "/" makes a folder, "->x" a symlink to x).
    static func folder(_ entries: [String]) throws -> String {
        let dir = FileManager.default.temporaryDirectory.path + "/rootbind-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for e in entries {
            if let arrow = e.range(of: "->") {
                try FileManager.default.createSymbolicLink(atPath: dir + "/" + e[..<arrow.lowerBound], withDestinationPath: String(e[arrow.upperBound...]))
            } else if e.hasSuffix("/") {
                try FileManager.default.createDirectory(atPath: dir + "/" + e, withIntermediateDirectories: true)
            } else {
                FileManager.default.createFile(atPath: dir + "/" + e, contents: Data())
            }
        }
        return dir
    }

    static func plan(_ dir: String, mounts: [Mount] = []) throws -> [SetupOp] {
        var c = ContainerConfiguration(command: ["true"])
        c.rootfs = .directory(HostPath(dir))
        c.mounts = mounts
        return try SetupPlan(configuration: c).ops
    }

    @Test func everyMountPointPresentBinds() throws {
        let dir = try Self.folder(["proc/", "dev/", "bin/"])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // sys is missing: its mount is noCreate for a folder root, skipped as on the overlay.
        #expect(RootBind.possible(ops: try Self.plan(dir), root: HostPath(dir)))
    }

    @Test func aMissingMountPointKeepsTheOverlay() throws {
        let dir = try Self.folder(["dev/"])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(!RootBind.possible(ops: try Self.plan(dir), root: HostPath(dir)))
    }

    @Test func aMountPointBeneathAnotherMountNeedsNothingFromTheFolder() throws {
        let dir = try Self.folder(["proc/", "dev/", "w/"])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // /w/sub lands on the tmpfs at /w, not on the root.
        let ops = try Self.plan(dir, mounts: [.tmpfs("/w"), .tmpfs("/w/sub")])
        #expect(RootBind.possible(ops: ops, root: HostPath(dir)))
        #expect(!RootBind.possible(ops: try Self.plan(dir, mounts: [.tmpfs("/x")]), root: HostPath(dir)))
    }

    @Test func aSymlinkIsNeverAMountPoint() throws {
        let dir = try Self.folder(["proc/", "real/", "dev->real"])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(!RootBind.possible(ops: try Self.plan(dir), root: HostPath(dir)))
    }

    @Test func aFolderThatIsNoLongerTheAdmittedOneKeepsTheOverlay() throws {
        let dir = try Self.folder(["proc/", "dev/"])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ops = try Self.plan(dir)
        #expect(!RootBind.possible(ops: ops, root: HostPath(dir, identity: FileIdentity(device: 1, inode: 1))))
        var st = stat()
        #expect(stat(dir, &st) == 0)
        let id = FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        #expect(RootBind.possible(ops: ops, root: HostPath(dir, identity: id)))
        #expect(!RootBind.possible(ops: ops + [SetupOp(kind: .mkdir, target: "tmp", mode: 0o1777)], root: HostPath(dir, identity: id)))
    }
}
