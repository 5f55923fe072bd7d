import AgentSupport
import CAgentSandbox
import FoundationEssentials
import Glibc

/// The subordinate id ranges a snapshot's files were given owners in (README "Owners").
/// The steps' mapping (`newuidmap`/`newgidmap`, see `IDMapPlan`) shows the agent's uid as
/// 0 and container id k (1...count) as host id `start + k - 1`; files unpacked for these
/// ranges carry exactly those host ids, so a step sees the layer's owners.
public struct OwnerRanges: Sendable, Equatable, CustomStringConvertible {
    public var uids: SubordinateRange
    public var gids: SubordinateRange

    public init(uids: SubordinateRange, gids: SubordinateRange) {
        self.uids = uids
        self.gids = gids
    }

    /// The ranges the steps of `mapping` get on this host, or nil when they run with one
    /// id (single mode, no ranges or helpers) or as real root (the agent refuses that
    /// without `allowRoot`, and then owners stay the agent's as in single mode).
    public static func forSteps(_ mapping: ContainerConfiguration.IDMapping) -> OwnerRanges? {
        guard mapping != .single, getuid() != 0 else { return nil }
        var c = ContainerConfiguration(command: ["/bin/true"])
        c.idMapping = mapping
        guard let plan = try? IDMapPlan.forCurrentUser(c), case .helpers(let u, let g) = plan.method else { return nil }
        return OwnerRanges(uids: u, gids: g)
    }

    /// True when container uid `id` has a host id in these ranges (0 is the agent's own).
    public func mapsUID(_ id: UInt32) -> Bool { id <= uids.count }
    public func mapsGID(_ id: UInt32) -> Bool { id <= gids.count }

    /// The host id a container uid `id` (mapped: `mapsUID`) lands on.
    public func hostUID(_ id: UInt32) -> UInt32 { id == 0 ? getuid() : uids.start + id - 1 }
    public func hostGID(_ id: UInt32) -> UInt32 { id == 0 ? getgid() : gids.start + id - 1 }

    /// `u100000+65536g100000+65536`: part of a snapshot's name, so a change of
    /// /etc/subuid or /etc/subgid gives new snapshots instead of files owned by ids the
    /// agent no longer has.
    public var key: String { "u\(uids.start)+\(uids.count)g\(gids.start)+\(gids.count)" }

    /// The ranges a `key` names, or nil.
    public init?(key: String) {
        guard key.hasPrefix("u"), let g = key.firstIndex(of: "g") else { return nil }
        let u = key[key.index(after: key.startIndex)..<g].split(separator: "+")
        let gg = key[key.index(after: g)...].split(separator: "+")
        guard u.count == 2, gg.count == 2, let us = UInt32(u[0]), let uc = UInt32(u[1]), let gs = UInt32(gg[0]),
              let gc = UInt32(gg[1]), uc > 0, gc > 0 else { return nil }
        self.init(uids: SubordinateRange(start: us, count: uc), gids: SubordinateRange(start: gs, count: gc))
    }

    public var description: String { "uids \(uids.start)+\(uids.count), gids \(gids.start)+\(gids.count)" }
}

/// Runs the owners child (CAgentSandbox/owners.c) in a user namespace mapped like the
/// steps' (0 = the agent, 1...N = the subordinate range), under a deadline.
public enum SubordinateOwners {
    /// Why the child did not finish: its stage, the errno and, when it was applying a
    /// list, the index of the record it stopped at.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var stage: String
        public var errno: Int32
        public var index: Int?

        public var description: String {
            stage + (errno != 0 ? ": " + String(cString: strerror(errno)) : "")
        }
    }

    /// Bytes of records (`agent_owners_record`), built by `append`.
    public struct List: Sendable {
        public private(set) var bytes: [UInt8] = []
        public private(set) var count = 0
        public init() {}

        /// Appends one entry: `path` relative to the root (no "." or ".." components),
        /// container ids, the permission bits to re-apply when `chmod` (after the chown),
        /// the capability xattr to re-set.
        public mutating func append(path: [UInt8], uid: UInt32, gid: UInt32, mode: UInt32, symlink: Bool, chmod: Bool = true,
                                    capability: [UInt8]) {
            let header = 24
            let raw = header + path.count + capability.count
            let size = (raw + 3) & ~3
            func put32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
            func put16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
            put32(UInt32(size)); put32(uid); put32(gid); put32(mode)
            put16(symlink ? UInt16(AGENT_OWNERS_KIND_SYMLINK)
                  : UInt16(AGENT_OWNERS_KIND_NODE) | (chmod ? UInt16(AGENT_OWNERS_FLAG_CHMOD) : 0))
            put16(UInt16(capability.count)); put32(UInt32(path.count))
            bytes += path
            bytes += capability
            bytes += [UInt8](repeating: 0, count: size - raw)
            count += 1
        }
    }

    /// Applies `list` beneath folder descriptor `root`.
    public static func apply(_ list: List, root: Int32, ranges: OwnerRanges, timeout: Duration) throws(Failure) {
        guard list.count > 0 else { return }
        let memfd = list.bytes.withUnsafeBytes { agent_sandbox_plan_memfd($0.baseAddress, $0.count) }
        guard memfd >= 0 else { throw Failure(stage: "memfd", errno: -memfd) }
        defer { close(memfd) }
        try run(Int32(AGENT_OWNERS_APPLY), root: root, list: memfd, length: list.bytes.count, ranges: ranges, timeout: timeout)
    }

    /// Deletes everything beneath folder descriptor `root` (not the folder itself).
    public static func removeContents(root: Int32, ranges: OwnerRanges, timeout: Duration) throws(Failure) {
        try run(Int32(AGENT_OWNERS_REMOVE), root: root, list: -1, length: 0, ranges: ranges, timeout: timeout)
    }

    private static func run(_ op: Int32, root: Int32, list: Int32, length: Int, ranges: OwnerRanges, timeout: Duration) throws(Failure) {
        let deadline = ContinuousClock.now + timeout
        var syncW: Int32 = -1, reportR: Int32 = -1
        let pid = agent_owners_spawn(op, root, list, length, &syncW, &reportR)
        guard pid > 0 else { throw Failure(stage: "clone", errno: -pid) }
        defer { close(reportR) }
        func reap(kill: Bool) {
            if kill { _ = Glibc.kill(pid, SIGKILL) }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
        do {
            try mapIDs(pid: pid, ranges: ranges, deadline: deadline)
        } catch {
            close(syncW)
            reap(kill: true)
            throw error
        }
        var one: UInt8 = 1
        let w = write(syncW, &one, 1)
        close(syncW)
        guard w == 1 else { reap(kill: true); throw Failure(stage: "sync", errno: errno) }
        var report = agent_owners_report()
        var got = 0
        while got < MemoryLayout<agent_owners_report>.size {
            let left = ContinuousClock.now.duration(to: deadline)
            guard left > .zero else { reap(kill: true); throw Failure(stage: "deadline of \(timeout) passed", errno: 0) }
            var p = pollfd(fd: reportR, events: Int16(POLLIN), revents: 0)
            let ms = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
            let n = poll(&p, 1, ms)
            if n < 0 { if errno == EINTR { continue }; let e = errno; reap(kill: true); throw Failure(stage: "poll", errno: e) }
            if n == 0 { continue }
            let r = withUnsafeMutableBytes(of: &report) { read(reportR, $0.baseAddress! + got, $0.count - got) }
            if r < 0 && errno == EINTR { continue }
            if r <= 0 { reap(kill: false); throw Failure(stage: "the owners process ended without a report", errno: 0) }
            got += r
        }
        reap(kill: false)
        guard report.stage != Int32(AGENT_OWNERS_STAGE_OK) else { return }
        throw Failure(stage: stageName(report.stage), errno: report.err, index: report.index >= 0 ? Int(report.index) : nil)
    }

    static func stageName(_ s: Int32) -> String {
        switch s {
        case Int32(AGENT_OWNERS_STAGE_SETUP): return "set-up"
        case Int32(AGENT_OWNERS_STAGE_LIST): return "malformed owner list"
        case Int32(AGENT_OWNERS_STAGE_OPEN): return "open"
        case Int32(AGENT_OWNERS_STAGE_CHOWN): return "chown"
        case Int32(AGENT_OWNERS_STAGE_CHMOD): return "chmod"
        case Int32(AGENT_OWNERS_STAGE_SETCAP): return "setxattr security.capability"
        case Int32(AGENT_OWNERS_STAGE_REMOVE): return "remove"
        default: return "stage \(s)"
        }
    }

    /// newuidmap/newgidmap for the child: 0 = the agent's uid/gid, 1...count = the range
    /// (what the steps' command namespace shows; see `IDMapPlan.nestedMaps`).
    private static func mapIDs(pid: Int32, ranges: OwnerRanges, deadline: ContinuousClock.Instant) throws(Failure) {
        let a: IDMapPlan.Helper, b: IDMapPlan.Helper
        do {
            (a, b) = try IDMapPlan.spawnHelpers(
                uid: (IDMapPlan.newuidmap, ["\(pid)", "0", "\(getuid())", "1", "1", "\(ranges.uids.start)", "\(ranges.uids.count)"]),
                gid: (IDMapPlan.newgidmap, ["\(pid)", "0", "\(getgid())", "1", "1", "\(ranges.gids.start)", "\(ranges.gids.count)"]))
        } catch let e as SandboxError {
            throw Failure(stage: "\(e.stage) \(e)", errno: 0)
        } catch {
            throw Failure(stage: "newuidmap \(error)", errno: 0)
        }
        if let hung = IDMapPlan.Helper.drain([a, b], until: deadline) {
            a.kill(); b.kill(); _ = a.finish(); _ = b.finish()
            throw Failure(stage: "\(hung.name) did not finish before the deadline", errno: 0)
        }
        let ea = a.finish(), eb = b.finish()
        if let ea { throw Failure(stage: "newuidmap " + ea, errno: 0) }
        if let eb { throw Failure(stage: "newgidmap " + eb, errno: 0) }
    }
}
