import Foundation
import Testing
@testable import SandboxPolicy

/// With an unwritable HOME the compiled BPF goes to a private per-user folder, which is
/// used only if it is really this user's: a folder, not a symlink, mode 0700.
@Suite struct SeccompCacheFallbackTests {
    @Test func fallbackNames() {
        #expect(SeccompCache.fallbackDirectory(runtimeDirectory: "/run/user/1000", uid: 1000) == "/run/user/1000/agent-seccomp")
        #expect(SeccompCache.fallbackDirectory(runtimeDirectory: nil, uid: 1000) == "/tmp/agent-seccomp-1000")
        #expect(SeccompCache.fallbackDirectory(runtimeDirectory: "relative", uid: 7) == "/tmp/agent-seccomp-7")
    }

    @Test func freshFallbackIsCreatedPrivate() throws {
        let base = try TestFiles.scratch("fallback")
        let path = base + "/agent-seccomp"
        #expect(SeccompCache.prepareFallback(path) == path)
        var st = stat()
        #expect(lstat(path, &st) == 0 && st.st_mode & 0o777 == 0o700 && st.st_uid == geteuid())
        // Existing and right: used again.
        #expect(SeccompCache.prepareFallback(path) == path)
    }

    @Test func wrongModeIsRefused() throws {
        let base = try TestFiles.scratch("fallback-mode")
        let path = base + "/agent-seccomp"
        #expect(mkdir(path, 0o700) == 0 && chmod(path, 0o755) == 0)
        #expect(SeccompCache.prepareFallback(path) == nil)
        // Refused, not repaired.
        var st = stat()
        #expect(lstat(path, &st) == 0 && st.st_mode & 0o777 == 0o755)
    }

    @Test func symlinkIsRefused() throws {
        let base = try TestFiles.scratch("fallback-link")
        let target = base + "/mine"
        #expect(mkdir(target, 0o700) == 0)
        #expect(symlink(target, base + "/agent-seccomp") == 0)
        #expect(SeccompCache.prepareFallback(base + "/agent-seccomp") == nil)
    }

    @Test(.enabled(if: geteuid() == 0, "needs root to make a folder owned by someone else"))
    func someoneElsesFolderIsRefused() throws {
        let base = try TestFiles.scratch("fallback-owner")
        let path = base + "/agent-seccomp"
        #expect(mkdir(path, 0o700) == 0 && chown(path, 65534, 65534) == 0)
        #expect(SeccompCache.prepareFallback(path) == nil)
    }

    @Test func writableProbeLooksAtTheNearestExistingFolder() throws {
        let base = try TestFiles.scratch("fallback-probe")
        #expect(SeccompCache.isWritable(base + "/not/yet/there"))
        #expect(!SeccompCache.isWritable("/nonexistent/.cache/agent/seccomp") || geteuid() == 0)
        FileManager.default.createFile(atPath: base + "/file", contents: Data())
        #expect(!SeccompCache.isWritable(base + "/file/below"))
    }
}
