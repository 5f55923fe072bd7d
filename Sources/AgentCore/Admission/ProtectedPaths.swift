import AgentSupport
import FoundationEssentials
import Glibc
import Sandbox

/// The agent's own files, which no job may reach whatever the policy says: its home, its
/// state folder, its binary and the queue folder, and every folder that contains one of them.
///
/// Checks compare file identities (device and inode), not path strings, so a bind-mounted
/// alias or a symlinked spelling of the state folder is caught as well.
public struct ProtectedPaths: Sendable {
    struct Entry: Sendable {
        /// "the agent's state folder", ...
        var what: String
        var path: String
        var identity: FileIdentity
        /// Whether everything below it is protected too (the state and queue folders), or
        /// only the folder itself and what contains it (the home: a checkout in it is fine).
        var below: Bool
    }

    var entries: [Entry] = []
    /// Identities of every folder that contains an entry, with the entry it contains.
    var ancestors: [FileIdentity: Int] = [:]

    public init() {}

    /// The protected paths of this agent process: `$HOME`, the state folder, the running
    /// binary and, for `agent watch`, the queue folder.
    public static func current(stateDirectory: String, queueDirectory: String? = nil,
                               environment: [String: String] = ProcessInfo.processInfo.environment) -> ProtectedPaths {
        var p = ProtectedPaths()
        if let home = environment["HOME"], home.hasPrefix("/"), home != "/" { p.add("the agent's home", home, below: false) }
        p.add("the agent's state folder", stateDirectory, below: true)
        if let exe = Self.executablePath() { p.add("the agent's binary", exe, below: false) }
        if let queueDirectory { p.add("the queue folder", queueDirectory, below: true) }
        return p
    }

    /// Adds `path` (symlinks followed: these are the agent's own paths) and its ancestors.
    public mutating func add(_ what: String, _ path: String, below: Bool) {
        var st = stat()
        guard stat(path, &st) == 0 else { return }
        let index = entries.count
        entries.append(Entry(what: what, path: path, identity: FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino)), below: below))
        // Walk up by descriptor from the entry (its parent folders as the kernel sees them).
        var fd = open(path, O_PATH | O_CLOEXEC)
        guard fd >= 0 else { return }
        var previous = entries[index].identity
        for _ in 0..<4096 {
            let parent = Self.parent(of: fd)
            close(fd)
            guard parent >= 0, let id = FileIdentity(descriptor: parent) else {
                if parent >= 0 { close(parent) }
                return
            }
            fd = parent
            if id == previous { break }  // "/" is its own parent
            if ancestors[id] == nil { ancestors[id] = index }
            previous = id
        }
        close(fd)
    }

    /// Why the opened `fd` may not be given to a job, or nil when it may: it is a protected
    /// path, contains one, or lies below the state or queue folder.
    public func refusal(for fd: Int32) -> String? {
        guard let id = FileIdentity(descriptor: fd) else { return "it cannot be examined" }
        if let e = entries.first(where: { $0.identity == id }) { return "it is \(e.what) (\(e.path))" }
        if let i = ancestors[id] { return "it contains \(entries[i].what) (\(entries[i].path))" }
        let below = entries.filter(\.below)
        guard !below.isEmpty else { return nil }
        var cur = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard cur >= 0 else { return "it cannot be examined" }
        defer { close(cur) }
        var previous = id
        for _ in 0..<4096 {
            let parent = Self.parent(of: cur)
            guard parent >= 0, let pid = FileIdentity(descriptor: parent) else {
                if parent >= 0 { close(parent) }
                return "its parent folders cannot be examined"
            }
            close(cur)
            cur = parent
            if pid == previous { return nil }
            if let e = below.first(where: { $0.identity == pid }) { return "it is inside \(e.what) (\(e.path))" }
            previous = pid
        }
        return "it is nested too deeply to examine"
    }

    /// The folder `fd` is in: `..` of a folder; for a file (which has no `..`), the folder
    /// its canonical path names. An `O_PATH` descriptor, or -1.
    static func parent(of fd: Int32) -> Int32 {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return -1 }
        if (st.st_mode & S_IFMT) == S_IFDIR { return openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC) }
        guard let host = HostPath(descriptor: fd) else { return -1 }
        // The kernel's path of the file (no empty or dot components): its folder is everything
        // before the last slash. Sliced by hand: `split(...).joined(...)` runs unspecialized and
        // costs a runtime type lookup on every agent start (this is on `agent exec`'s path).
        let path = host.path
        let folder = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? ""
        return open(folder.isEmpty ? "/" : folder, O_PATH | O_DIRECTORY | O_CLOEXEC)
    }

    static func executablePath() -> String? {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
