import Foundation
import Testing

/// A read-only root made from a folder is the folder itself, bound read-only, when every
/// mount point the plan needs is already there (`RootBind.swift`); otherwise it is an
/// overlay whose upper layer is the container's private tmpfs. Either way nothing is ever
/// written into the folder.
@Suite struct RootBindTests {
    /// The filesystem type of the container's `/` (mountinfo: after the " - " separator).
    static func rootType(_ mountinfo: String) -> String? {
        for line in mountinfo.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count > 4, f[4] == "/", let dash = f.firstIndex(of: "-"), dash + 1 < f.count else { continue }
            return String(f[dash + 1])
        }
        return nil
    }

    /// Every entry of `dir`, recursively, with its type and mode: what "unchanged" compares.
    static func listing(_ dir: String) -> [String] {
        var out: [String] = []
        let e = FileManager.default.enumerator(atPath: dir)
        while let rel = e?.nextObject() as? String {
            var st = stat()
            lstat(dir + "/" + rel, &st)
            out.append("\(rel) \(st.st_mode) \(st.st_size)")
        }
        return out.sorted()
    }

    @Test func aFolderWithEveryMountPointIsBoundReadOnly() async throws {
        let root = try SandboxFixture.rootfsCopy()
        let before = Self.listing(root)
        let r = try await Harness.exec(["--rootfs", root] + SandboxFixture.unconfined,
                                       ["sh", "-c", "cat /proc/self/mountinfo; touch /new 2>&1; ls /dev/null /proc/self/status"])
        #expect(r.status == 0, "\(r.stderr)")
        let type = Self.rootType(r.stdout)
        #expect(type != nil && type != "overlay", "the root should be the folder's own filesystem: \(r.stdout)")
        #expect(r.stdout.contains("Read-only file system"), "\(r.stdout)")
        // The mount flags of the folder's bind: read-only, nosuid, nodev.
        let rootLine = r.stdout.split(separator: "\n").first { $0.split(separator: " ").count > 5 && $0.split(separator: " ")[4] == "/" }
        let opts = rootLine.map { String($0.split(separator: " ")[5]) } ?? ""
        #expect(opts.hasPrefix("ro,") && opts.contains("nosuid") && opts.contains("nodev"), "\(opts)")
        #expect(Self.listing(root) == before)
    }

    @Test func aFolderWithoutAMountPointIsOverlaidAndNotWritten() async throws {
        let root = try SandboxFixture.rootfsCopy()
        try FileManager.default.removeItem(atPath: root + "/proc")
        let before = Self.listing(root)
        let r = try await Harness.exec(["--rootfs", root] + SandboxFixture.unconfined,
                                       ["sh", "-c", "cat /proc/self/mountinfo; touch /new 2>&1; ls -d /proc/self"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(Self.rootType(r.stdout) == "overlay", "\(r.stdout)")
        #expect(r.stdout.contains("Read-only file system") && r.stdout.contains("/proc/self"), "\(r.stdout)")
        #expect(Self.listing(root) == before, "the mount point was made in the folder itself")
    }

    @Test func aBindTargetMissingFromTheFolderKeepsTheOverlay() async throws {
        let root = try SandboxFixture.rootfsCopy()
        let data = try Harness.scratch("bind-src")
        try "x\n".write(toFile: data + "/f", atomically: false, encoding: .utf8)
        let before = Self.listing(root)
        let r = try await Harness.exec(["--rootfs", root, "--bind", "\(data):/data/in"] + SandboxFixture.unconfined,
                                       ["sh", "-c", "cat /proc/self/mountinfo; cat /data/in/f"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(Self.rootType(r.stdout) == "overlay", "\(r.stdout)")
        #expect(r.stdout.hasSuffix("x\n"), "\(r.stdout)")
        #expect(Self.listing(root) == before)
        #expect(!FileManager.default.fileExists(atPath: root + "/data"))
    }

    /// A symlink planted where a mount point should be is never taken for one: the check
    /// resolves without symlinks, as agent-init does, so the start refuses it at its stage.
    @Test func aSymlinkedMountPointIsNotAMountPoint() async throws {
        let root = try SandboxFixture.rootfsCopy()
        try FileManager.default.removeItem(atPath: root + "/dev")
        try FileManager.default.createSymbolicLink(atPath: root + "/dev", withDestinationPath: "/tmp")
        let r = try await Harness.exec(["--rootfs", root] + SandboxFixture.unconfined, ["true"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("mount /dev"), "\(r.stderr)")
    }

    @Test func aWritableRootStaysAnOverlayOverTheFolder() async throws {
        let root = try SandboxFixture.rootfsCopy()
        let before = Self.listing(root)
        let r = try await Harness.exec(["--rootfs", root, "--rw-rootfs"] + SandboxFixture.unconfined,
                                       ["sh", "-c", "cat /proc/self/mountinfo; touch /new && echo wrote"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(Self.rootType(r.stdout) == "overlay", "\(r.stdout)")
        #expect(r.stdout.hasSuffix("wrote\n"), "\(r.stdout)")
        #expect(Self.listing(root) == before)
    }
}
