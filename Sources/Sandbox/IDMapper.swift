import CAgentSandbox
import AgentSupport
import FoundationEssentials
import Glibc

/// A range of subordinate ids from `/etc/subuid` or `/etc/subgid`.
public struct SubordinateRange: Sendable, Equatable {
    public var start: UInt32
    public var count: UInt32

    public init(start: UInt32, count: UInt32) {
        self.start = start
        self.count = count
    }

    /// The first range for `user` (by name or numeric uid) in a subuid/subgid file's text.
    public static func parse(_ text: String, user: String?, id: UInt32) -> SubordinateRange? {
        for line in text.split(separator: "\n") {
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            guard f.count == 3, let start = UInt32(f[1]), let count = UInt32(f[2]), count > 0 else { continue }
            if (user != nil && f[0] == user![...]) || f[0] == String(id)[...] {
                return SubordinateRange(start: start, count: count)
            }
        }
        return nil
    }
}

/// How the ids of one container are mapped, decided in the parent before the clone.
struct IDMapPlan: Sendable, Equatable {
    enum Method: Sendable, Equatable {
        /// Write one line to uid_map/gid_map ourselves (setgroups denied): the agent's ids are
        /// the container namespace's `outerUID`/`outerGID` and the command's `insideUID`/`insideGID`.
        case single(insideUID: UInt32, insideGID: UInt32, outerUID: UInt32, outerGID: UInt32)
        /// newuidmap/newgidmap: inside 0 = the agent's ids, 1... = the subordinate ranges.
        case helpers(uids: SubordinateRange, gids: SubordinateRange)
        /// Real root (allowRoot): write a range ourselves; inside 0 is never host 0.
        case rootRange(uids: SubordinateRange, gids: SubordinateRange)
    }

    var method: Method
    var reported: ContainerConfiguration.IDMapping
    /// The ids the init takes once the maps exist (in the container's namespace: never 0).
    var initUID: UInt32
    var initGID: UInt32
    /// setgroups(2) is allowed (not in single mode).
    var groupsAllowed: Bool

    static let rootFallbackRange = SubordinateRange(start: 2_000_000_000, count: 65536)
    /// The id-mapping helpers; `AGENT_NEWUIDMAP`/`AGENT_NEWGIDMAP` replace them when set (tests
    /// point them at a helper that hangs, to exercise the set-up deadline).
    static let newuidmap = helperPath("AGENT_NEWUIDMAP", default: "/usr/bin/newuidmap")
    static let newgidmap = helperPath("AGENT_NEWGIDMAP", default: "/usr/bin/newgidmap")

    private static func helperPath(_ variable: String, default path: String) -> String {
        guard let v = getenv(variable), v.pointee != 0 else { return path }
        return String(cString: v)
    }

    /// Chooses the mapping for `requested` given the host facts (injectable for unit tests).
    static func resolve(
        requested: ContainerConfiguration.IDMapping, uid inside: UInt32, gid insideGID: UInt32,
        hostUID: UInt32, userName: String?, subuid: String?, subgid: String?, helpersExist: Bool
    ) throws -> IDMapPlan {
        let uids = subuid.flatMap { SubordinateRange.parse($0, user: userName, id: hostUID) }
        let gids = subgid.flatMap { SubordinateRange.parse($0, user: userName, id: hostUID) }
        if hostUID == 0 {
            // Container root maps to an unprivileged range, never to host uid 0. Without a
            // range for root, use one far above what useradd hands out (SUB_UID_MAX 600100000)
            // so it cannot collide with a user's subordinate ids.
            let u = uids ?? rootFallbackRange
            let g = gids ?? rootFallbackRange
            return IDMapPlan(method: .rootRange(uids: u, gids: g), reported: .subordinate, initUID: 1, initGID: 1, groupsAllowed: true)
        }
        let canUseHelpers = uids != nil && gids != nil && helpersExist
        switch requested {
        case .subordinate where !canUseHelpers:
            throw SandboxError(stage: "id mapping", detail: "(subordinate mapping needs ranges for \(userName ?? String(hostUID)) in /etc/subuid and /etc/subgid and \(newuidmap)/\(newgidmap))")
        case .subordinate:
            return IDMapPlan(method: .helpers(uids: uids!, gids: gids!), reported: .subordinate, initUID: 1, initGID: 1, groupsAllowed: true)
        case .automatic where canUseHelpers:
            return IDMapPlan(method: .helpers(uids: uids!, gids: gids!), reported: .subordinate, initUID: 1, initGID: 1, groupsAllowed: true)
        default:
            return IDMapPlan(method: .single(insideUID: inside, insideGID: insideGID, outerUID: outer(inside), outerGID: outer(insideGID)),
                             reported: .single,
                             initUID: outer(inside), initGID: outer(insideGID), groupsAllowed: false)
        }
    }

    /// Reads the host facts and resolves.
    static func forCurrentUser(_ c: ContainerConfiguration) throws -> IDMapPlan {
        let uid = getuid()
        if c.idMapping == .single && uid != 0 {
            // Single mapping never looks at the user's name, ranges or the helpers.
            return try resolve(requested: .single, uid: c.uid, gid: c.gid, hostUID: uid, userName: nil,
                               subuid: nil, subgid: nil, helpersExist: false)
        }
        var name: String? = nil
        if let pw = getpwuid(uid) { name = String(cString: pw.pointee.pw_name) }
        let helpers = access(newuidmap, X_OK) == 0 && access(newgidmap, X_OK) == 0
        return try resolve(
            requested: c.idMapping, uid: c.uid, gid: c.gid, hostUID: uid, userName: name,
            subuid: readSmallTextFile("/etc/subuid"),
            subgid: readSmallTextFile("/etc/subgid"),
            helpersExist: helpers)
    }

    /// The plan of a container that joins a pod made with this plan: the pod's user namespace
    /// is mapped already, so only the command's ids (its nested map) change. In single mode
    /// the pod's one mapped id becomes the command's `uid`/`gid`.
    func joining(uid: UInt32, gid: UInt32) -> IDMapPlan {
        guard case .single(_, _, let ou, let og) = method else { return self }
        var p = self
        p.method = .single(insideUID: uid, insideGID: gid, outerUID: ou, outerGID: og)
        return p
    }

    /// The id the container's user namespace (the init's) gives to inside id `id` of the
    /// command's: never 0. The container's namespace maps no id 0 at all, so the kernel makes a
    /// non-dumpable init's /proc/1/{fd,environ,...} owned by *host* root (task_dump_owner:
    /// uid 0 of the namespace that owns its mm, or global root when that has none), which no
    /// process of the container is or can override (it is mapped in no namespace of theirs).
    /// With uid 0 mapped there, container root would be the owner and could list /proc/1/fd.
    /// The command's own namespace puts the ids back where the job expects them (0 is root).
    static func outer(_ id: UInt32) -> UInt32 { id == 0 ? 1 : id }

    /// The container namespace's ids for the command's `uid`/`gid` (the owner of a file the
    /// init writes, e.g. a secret file mount): one up, as the nested maps shift them back.
    func containerIDs(uid: UInt32, gid: UInt32) -> (uid: UInt32, gid: UInt32) {
        switch method {
        case .single(let u, let g, let ou, let og): return (uid == u ? ou : uid, gid == g ? og : gid)
        case .helpers, .rootRange: return (uid == .max ? uid : uid + 1, gid == .max ? gid : gid + 1)
        }
    }

    /// The command's maps in its nested user namespace (written by the init): every id the
    /// container's map has, shifted back so the command sees the ids it asked for (inside 0 is
    /// the container's 1, see `outer`). One line per line of the container's map: the kernel
    /// requires each extent to fall within a single extent of the parent's map.
    var nestedMaps: (uid: String, gid: String) {
        switch method {
        case .single(let u, let g, let ou, let og): return ("\(u) \(ou) 1\n", "\(g) \(og) 1\n")
        case .helpers(let u, let g): return ("0 1 1\n1 2 \(u.count)\n", "0 1 1\n1 2 \(g.count)\n")
        case .rootRange(let u, let g): return ("0 1 \(u.count)\n", "0 1 \(g.count)\n")
        }
    }

    /// Writes the maps for the child `pid` (which waits on the sync pipe meanwhile). The
    /// helpers run under `timeout`: past it they are killed and reaped (their whole process
    /// group) and the error names the one still running.
    func apply(pid: Int32, timeout: Duration, helpers: (uid: String, gid: String) = (newuidmap, newgidmap)) throws {
        try finish(start(pid: pid, helpers: helpers), timeout: timeout)
    }

    /// The helpers of a mapping under way (`start`), or nil when the maps are written already.
    struct Pending {
        var uid: Helper, gid: Helper
    }

    /// Writes the maps (single, root range) or starts the helpers, which `finish` waits for:
    /// a reserved start (ContainerReservation) lets them run while the plan is built.
    func start(pid: Int32, helpers: (uid: String, gid: String) = (newuidmap, newgidmap)) throws -> Pending? {
        let uid = getuid(), gid = getgid()
        switch method {
        // Every map leaves the container's id 0 unmapped (see `outer`).
        case .single(_, _, let ou, let og):
            try Self.writeProc(pid, "setgroups", "deny\n")
            try Self.writeProc(pid, "uid_map", "\(ou) \(uid) 1\n")
            try Self.writeProc(pid, "gid_map", "\(og) \(gid) 1\n")
            return nil
        case .rootRange(let u, let g):
            try Self.writeProc(pid, "uid_map", "1 \(u.start) \(u.count)\n")
            try Self.writeProc(pid, "gid_map", "1 \(g.start) \(g.count)\n")
            return nil
        case .helpers(let u, let g):
            let (a, b) = try Self.spawnHelpers(
                uid: (helpers.uid, ["\(pid)", "1", "\(uid)", "1", "2", "\(u.start)", "\(u.count)"]),
                gid: (helpers.gid, ["\(pid)", "1", "\(gid)", "1", "2", "\(g.start)", "\(g.count)"]))
            return Pending(uid: a, gid: b)
        }
    }

    /// Waits for the helpers `start` began, under `timeout` (from now); nil: nothing to wait for.
    func finish(_ pending: Pending?, timeout: Duration) throws {
        guard let p = pending else { return }
        let a = p.uid, b = p.gid
        let hung = Helper.drain([a, b], until: .now + timeout)
        if let hung {
            Self.cancel(p)
            throw SandboxError.timedOut(stage: hung.name, after: timeout)
        }
        let ea = a.finish(), eb = b.finish()
        if let ea { throw SandboxError(stage: a.name, detail: ea) }
        if let eb { throw SandboxError(stage: b.name, detail: eb) }
    }

    /// Kills and reaps the helpers of a mapping given up on.
    static func cancel(_ pending: Pending?) {
        guard let p = pending else { return }
        p.uid.kill(); p.gid.kill(); _ = p.uid.finish(); _ = p.gid.finish()
    }

    private static func writeProc(_ pid: Int32, _ file: String, _ text: String) throws {
        let fd = open("/proc/\(pid)/\(file)", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SandboxError(stage: file, errno: errno) }
        defer { close(fd) }
        let n = text.withCString { write(fd, $0, strlen($0)) }
        if n < 0 { throw SandboxError(stage: file, errno: errno, detail: "(\(text.trimmingWhitespaceAndNewlines()))") }
    }

    /// A running helper (in a process group of its own) whose stderr is captured.
    final class Helper {
        let pid: pid_t
        let stderrFD: Int32
        let name: String
        var output: [UInt8] = []
        var open = true

        init(pid: pid_t, stderrFD: Int32, name: String) {
            self.pid = pid
            self.stderrFD = stderrFD
            self.name = name
        }

        /// Reads every helper's stderr until EOF (they close it by exiting), or until the
        /// deadline; returns the first helper still open then, or nil.
        static func drain(_ helpers: [Helper], until deadline: ContinuousClock.Instant) -> Helper? {
            var buf = [UInt8](repeating: 0, count: 4096)
            while true {
                let open = helpers.filter(\.open)
                guard !open.isEmpty else { return nil }
                let left = ContinuousClock.now.duration(to: deadline)
                if left <= .zero { return open[0] }
                var fds = open.map { pollfd(fd: $0.stderrFD, events: Int16(POLLIN), revents: 0) }
                let ms = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
                let n = poll(&fds, nfds_t(fds.count), ms)
                if n < 0 && errno != EINTR { return open[0] }
                for (k, h) in open.enumerated() where fds[k].revents != 0 {
                    let r = read(h.stderrFD, &buf, buf.count)
                    if r > 0 { h.output += buf[0..<r] } else if r == 0 || errno != EINTR { h.open = false }
                }
            }
        }

        /// SIGKILL to the helper's whole process group (a script's children too).
        func kill() { _ = Glibc.kill(-pid, SIGKILL) }

        /// Reaps the helper; returns nil on success, else a message.
        func finish() -> String? {
            close(stderrFD)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            if status == 0 { return nil }
            let msg = String(decoding: output, as: UTF8.self).trimmingWhitespaceAndNewlines()
            return "(\(name) failed with status \(status >> 8)\(msg.isEmpty ? "" : ": " + msg))"
        }
    }

    /// Starts newuidmap (`uid`: its path and arguments) and newgidmap (`gid`) to run at once;
    /// each costs an exec of a setuid binary that loads five libraries (1.5-2 ms here).
    /// On two CPUs the scheduler put the second helper's fork on the CPU the first one ran
    /// on (this thread's CPU was busy with the fork itself) and left it queued there until
    /// the first exited: the two ran one after the other (perf sched traces). So the second
    /// is forked with this thread pinned to its own CPU, where it runs at once while this
    /// thread waits for its exec (posix_spawn is a vfork). On a failure nothing is left.
    static func spawnHelpers(uid: (path: String, args: [String]), gid: (path: String, args: [String])) throws -> (Helper, Helper) {
        let a = try spawnHelper("newuidmap", uid.path, uid.args)
        var saved = agent_sandbox_affinity()
        let pinned = agent_sandbox_pin_here(&saved) == 1
        defer { if pinned { agent_sandbox_restore_affinity(&saved) } }
        do {
            return (a, try spawnHelper("newgidmap", gid.path, gid.args))
        } catch {
            a.kill(); _ = a.finish(); throw error
        }
    }

    /// Starts helper `name` (the stage errors name: "newuidmap", whatever path replaced it).
    static func spawnHelper(_ name: String, _ path: String, _ args: [String]) throws -> Helper {
        var fds: [Int32] = [0, 0]
        let prc = agent_sandbox_pipe(&fds)
        guard prc == 0 else { throw SandboxError(stage: "pipe", errno: -prc) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        // A process group of its own, so a deadline kills whatever the helper started.
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attr, 0)
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + args).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        let envp: [UnsafeMutablePointer<CChar>?] = [strdup("PATH=/usr/bin:/bin"), nil]
        defer { for e in envp { free(e) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attr, argv, envp)
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            throw SandboxError(stage: name, errno: rc, detail: path)
        }
        return Helper(pid: pid, stderrFD: fds[0], name: name)
    }
}
