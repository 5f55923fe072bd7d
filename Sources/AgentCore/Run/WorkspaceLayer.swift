import AgentSupport
import FoundationEssentials
import Glibc
import Sandbox

/// The per-job copy-on-write layer over the checked-out source.
///
/// Steps see the workspace at `/workspace` through overlayfs mounted inside the step's
/// user namespace: the source is the read-only lower layer, and the job's `upper`
/// directory (under the agent's state folder, never visible to a container) collects
/// every write, so step 2 sees what step 1 built and the source is never modified.
/// Where overlayfs is not possible the layer falls back to a private copy of the source.
///
/// The layer holds an `flock` on its `lock` file for its whole life, so a layer whose lock
/// is free belongs to an agent that died (SIGKILL, power loss) and `removeStale` may
/// delete it.
public final class WorkspaceLayer: @unchecked Sendable {
    public enum Mode: String, Sendable { case overlay, copy }

    /// `<state>/jobs/<job-id>-<random>`
    public let root: String
    /// The checked-out source, admitted by descriptor (or an empty directory of the layer's
    /// own when the job has none).
    public let source: HostPath
    /// Keeps the admitted source open (and its inode alive) while the layer exists.
    private let admitted: AdmittedPath?
    public private(set) var mode: Mode
    private var testLayers = 0
    /// The open `lock` file, flocked while the layer is in use; -1 once removed.
    private var lockFD: Int32 = -1

    public var upper: String { root + "/upper" }
    var work: String { root + "/work" }
    var copy: String { root + "/copy" }

    /// Creates the layer's directories under `stateDirectory/jobs`.
    public init(stateDirectory: String, jobID: String, source: AdmittedPath?) throws {
        let fm = FileManager.default
        let jobs = stateDirectory + "/jobs"
        try fm.createDirectory(atPath: jobs, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var template = Array("\(jobs)/\(jobID)-XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw SandboxError(stage: "workspace layer", errno: errno, detail: jobs)
        }
        root = String(cString: template)
        // The lock file is created and flocked under a temporary name, then renamed into
        // place, so a sweeper (another job's `removeStale`) never finds `lock` unlocked.
        // Opening `lock` and then flocking it left a window in which the sweeper took the
        // lock first and deleted the new layer.
        lockFD = open(root + "/lock.new", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard lockFD >= 0, flock(lockFD, LOCK_EX | LOCK_NB) == 0, rename(root + "/lock.new", root + "/lock") == 0 else {
            let e = errno
            if lockFD >= 0 { close(lockFD) }
            lockFD = -1
            throw SandboxError(stage: "workspace layer lock", errno: e, detail: root + "/lock")
        }
        // deinit does not run for an init that throws, so the lock is closed here.
        for d in ["upper", "work"] + (source == nil ? ["empty"] : []) where mkdir(root + "/" + d, 0o755) != 0 {
            let e = errno
            close(lockFD)
            throw SandboxError(stage: "workspace layer", errno: e, detail: root + "/" + d)
        }
        self.source = source?.host ?? HostPath(root + "/empty")
        admitted = source
        mode = .overlay
    }

    /// Switches to copy mode (overlayfs refused): copies the source into the layer once,
    /// through the admitted descriptor (`/proc/self/fd/N/.`), never by its path again.
    /// An iterative walk (`TreeCopy`): any depth, and FIFOs, sockets and devices are skipped
    /// with a warning (returned) rather than opened, which blocked forever on a FIFO.
    @discardableResult
    public func fallBackToCopy() throws -> [String] {
        guard mode == .overlay else { return [] }
        _ = try? FileTree.removeTree(copy)
        let from = admitted.map { "/proc/self/fd/\($0.descriptor)/." } ?? source.path
        let warnings = try TreeCopy.copy(from, to: copy)
        mode = .copy
        return warnings
    }

    /// The job's writable root layer over its image or rootfs folder (`root-upper`, with
    /// `root-work` for overlayfs), made on first use: build steps mount it as their root's
    /// upper layer, so step 1's installs are there in step 2, as in one GitLab job
    /// container. It lives in this layer's folder (never visible to a container as such)
    /// and goes with it.
    public func rootLayer() throws -> (upper: String, work: String) {
        for d in ["root-upper", "root-work"] where mkdir(root + "/" + d, 0o755) != 0 && errno != EEXIST {
            throw SandboxError(stage: "root layer", errno: errno, detail: root + "/" + d)
        }
        return (root + "/root-upper", root + "/root-work")
    }

    /// The shared root layer when a build step made one: test steps see it read-only, as
    /// the top lower layer of their root.
    public var existingRootUpper: String? {
        var st = stat()
        return lstat(root + "/root-upper", &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR ? root + "/root-upper" : nil
    }

    /// The `/workspace` mount of a build step: read-write, shared by all steps of the job.
    public func buildMount(target: String = "/workspace") -> Mount {
        switch mode {
        case .overlay:
            return Mount(target: target, kind: .overlay(lower: [source], upper: HostPath(upper), work: HostPath(work)))
        case .copy:
            return .bind(copy, target, readOnly: false)
        }
    }

    /// The `/workspace` mount of a test step: read-only, or with `throwaway` a fresh
    /// writable layer on top whose writes vanish after the step.
    public func testMount(target: String = "/workspace", throwaway: Bool) throws -> Mount {
        switch mode {
        case .overlay:
            if throwaway {
                testLayers += 1
                let dir = root + "/test-\(testLayers)"
                try FileManager.default.createDirectory(atPath: dir + "/upper", withIntermediateDirectories: true)
                try FileManager.default.createDirectory(atPath: dir + "/work", withIntermediateDirectories: true)
                return Mount(target: target, kind: .overlay(lower: [HostPath(upper), source], upper: HostPath(dir + "/upper"), work: HostPath(dir + "/work")))
            }
            // Two lower layers and no upper: overlayfs mounts it read-only.
            return Mount(target: target, kind: .overlay(lower: [HostPath(upper), source], upper: "", work: ""))
        case .copy:
            if throwaway {
                testLayers += 1
                let dir = root + "/test-\(testLayers)"
                _ = try TreeCopy.copy(copy, to: dir)
                return .bind(dir, target, readOnly: false)
            }
            return .bind(copy, target, readOnly: true)
        }
    }

    /// Removes a throwaway test layer after its step.
    public func discardTestLayers() {
        let fm = FileManager.default
        for i in 1...max(testLayers, 1) { try? fm.removeItem(atPath: root + "/test-\(i)") }
    }

    /// Removes the whole layer. Files owned by other (subordinate) uids can't be removed
    /// by the agent directly; `removeInsideUserNamespace` handles those.
    public func remove() async {
        await RootlessRemove.remove(root)
        if lockFD >= 0 { close(lockFD) }
        lockFD = -1
    }

    deinit {
        if lockFD >= 0 { close(lockFD) }
    }

    /// A layer without a lock file this old is a leftover of an agent from before layers
    /// had locks (or one killed between creating the folder and renaming its lock in place).
    static let unlockedLayerAge: Double = 3600

    /// Deletes the layers under `stateDirectory/jobs` whose agent is gone: their lock is
    /// free. Layers of running jobs (this process's or another agent's sharing the state
    /// folder) are locked and left alone. Returns the folders it removed.
    @discardableResult
    public static func removeStale(stateDirectory: String) async -> [String] {
        let jobs = stateDirectory + "/jobs"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: jobs) else { return [] }
        var removed: [String] = []
        for name in names.sorted() {
            let dir = jobs + "/" + name
            var st = stat()
            guard lstat(dir, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR, st.st_uid == getuid() else { continue }
            let fd = open(dir + "/lock", O_RDWR | O_CLOEXEC | O_NOFOLLOW)
            if fd < 0 {
                guard errno == ENOENT, Double(time(nil) - st.st_mtim.tv_sec) > unlockedLayerAge else { continue }
            } else if flock(fd, LOCK_EX | LOCK_NB) != 0 || !isStillTheLockFile(fd, path: dir + "/lock") {
                close(fd)  // in use, or its owner removed it between our open and flock
                continue
            }
            // Ours now (lock held until the tree is gone): no other sweeper removes it twice.
            await RootlessRemove.remove(dir)
            if fd >= 0 { close(fd) }
            if lstat(dir, &st) != 0 { removed.append(dir) }
        }
        return removed
    }

    /// Whether `fd` is still the file at `path`. A layer's owner unlinks its lock (with the
    /// tree) before closing it, so a sweeper that opened the lock just before the unlink
    /// gets the flock of a file no longer in the layer, once the owner closes it.
    private static func isStillTheLockFile(_ fd: Int32, path: String) -> Bool {
        var open = stat(), named = stat()
        return fstat(fd, &open) == 0 && lstat(path, &named) == 0 && open.st_dev == named.st_dev && open.st_ino == named.st_ino
    }
}

/// Deletes a tree the agent created, including files a container created under
/// subordinate uids, which the agent itself may not unlink: for those the delete runs
/// as root of a user namespace with the same mapping.
public enum RootlessRemove {
    public static func remove(_ path: String) async {
        let fm = FileManager.default
        guard fm.fileExists(atPath: path) else { return }
        // One pass with *at calls (owned folders made writable on the way, symlinks never
        // followed); anything it could not delete goes the slower ways below.
        if (try? FileTree.removeTree(path)) == true, !fm.fileExists(atPath: path) { return }
        makeWritable(path)
        if (try? fm.removeItem(atPath: path)) != nil { return }
        // Fall back: a container with the directory bound read-write runs rm -rf.
        var config = ContainerConfiguration(command: ["/bin/rm", "-rf", "/target/contents"])
        config.mounts = [.bind(path, "/target/contents", readOnly: false)]
        config.command = ["/bin/sh", "-c", "rm -rf /target/contents/* /target/contents/.[!.]* /target/contents/..?* 2>/dev/null; true"]
        config.seccomp = .unconfined
        config.capabilities = .dockerDefault
        if let c = try? await RunningContainer.start(config) {
            _ = await c.wait()
        }
        try? fm.removeItem(atPath: path)
    }

    /// Overlay work directories are created mode 000; make every folder we own deletable.
    /// Iterative (`TreeWalk`), never following a symlink out of the layer.
    private static func makeWritable(_ path: String) {
        let uid = getuid()
        let walk = TreeWalk(visit: { parent, name, st, _ in
            guard (st.st_mode & S_IFMT) == S_IFDIR, st.st_uid == uid else { return false }
            fchmodat(parent, name, 0o700, 0)  // before listing: a mode-000 directory cannot be read
            return true
        })
        walk.run(path)
    }
}
