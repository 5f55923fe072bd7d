import AgentSupport
import CAgentSandbox
import FoundationEssentials
import Glibc

/// A read-only tree that COPY and ADD read from: the build context (one folder, opened by
/// descriptor), or a stage's or image's layers (snapshot folders, top first) seen as
/// overlayfs would merge them (whiteouts hide, opaque folders cut off what lies below).
/// Entries are reached by descriptor only: a symlink is text, never followed, except the
/// top of a context source, which `openat2(RESOLVE_BENEATH)` resolves inside the context
/// and refuses when it leads out.
final class SourceTree {
    /// One entry: its stat and, for a folder, its descriptors in every layer that merges
    /// into it (top first); for anything else the folder descriptor and name it lives in.
    struct Node {
        var st: stat
        var dirs: [Int32] = []
        var parent: Int32 = -1
        var name: String = ""
        var isDirectory: Bool { (st.st_mode & S_IFMT) == S_IFDIR }
    }

    private var owned: [Int32] = []
    private let roots: [Int32]
    let isContext: Bool
    /// Context paths `.dockerignore` excludes (relative, no leading slash).
    var excluded: (String) -> Bool = { _ in false }

    /// The context folder `fd` (borrowed).
    init(context fd: Int32) {
        roots = [fd]
        isContext = true
    }

    /// Layer folders, top first (the agent's snapshots).
    init(layers: [String]) throws(BuildError) {
        var fds: [Int32] = []
        for l in layers {
            let fd = open(l, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)
            guard fd >= 0 else {
                let e = errno
                fds.forEach { close($0) }
                throw BuildError(.agent, stage: "COPY", "cannot open layer \(l): \(String(cString: strerror(e)))")
            }
            fds.append(fd)
        }
        roots = fds
        owned = fds
        isContext = false
    }

    deinit { owned.forEach { close($0) } }

    private func keep(_ fd: Int32) -> Int32 {
        owned.append(fd)
        return fd
    }

    static func isWhiteout(_ st: stat) -> Bool {
        (st.st_mode & S_IFMT) == S_IFCHR && st.st_rdev == 0
    }

    static func isOpaque(_ fd: Int32) -> Bool {
        var v = [UInt8](repeating: 0, count: 4)
        guard let get = fgetxattrCall else { return false }
        for name in ["user.overlay.opaque", "trusted.overlay.opaque"] {
            let n = get(fd, name, &v, v.count)
            if n == 1 && v[0] == UInt8(ascii: "y") { return true }
        }
        return false
    }

    /// The root folder of the tree.
    func root() -> Node {
        var st = stat()
        fstat(roots[0], &st)
        return Node(st: st, dirs: roots)
    }

    /// The child `name` of folder `dir`, merged across its layers, or nil.
    func child(_ dir: Node, _ name: String) -> Node? {
        var found: Node?
        for fd in dir.dirs {
            var st = stat()
            guard fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            if !isContext && Self.isWhiteout(st) { break }
            if found == nil {
                found = Node(st: st, parent: fd, name: name)
                guard (st.st_mode & S_IFMT) == S_IFDIR else { break }
            } else if (st.st_mode & S_IFMT) != S_IFDIR {
                break
            }
            let sub = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard sub >= 0 else { break }
            found!.dirs.append(keep(sub))
            if !isContext && Self.isOpaque(sub) { break }
        }
        return found
    }

    /// The names in folder `dir`, merged, sorted by bytes.
    func children(_ dir: Node) -> [String] {
        var seen = Set<String>(), hidden = Set<String>()
        for fd in dir.dirs {
            let copy = dup(fd)
            guard copy >= 0, let d = fdopendir(copy) else { if copy >= 0 { close(copy) }; continue }
            rewinddir(d)
            while let e = readdir(d) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name == "." || name == ".." || hidden.contains(name) { continue }
                var st = stat()
                if !isContext, fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0, Self.isWhiteout(st) {
                    hidden.insert(name)
                    continue
                }
                seen.insert(name)
            }
            closedir(d)
        }
        return seen.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    }

    /// Resolves a source path. In the context a symlink along the way is followed only
    /// while it stays inside (`RESOLVE_BENEATH`); `../` or a link out is refused. In layers
    /// no symlink is followed.
    func lookup(_ path: String, what: String) throws(BuildError) -> Node? {
        let parts = path.split(separator: "/").map(String.init).filter { $0 != "." }
        if isContext {
            if parts.isEmpty { return root() }
            let fd = agent_resolve_open_beneath(roots[0], parts.joined(separator: "/"), O_PATH | O_NOFOLLOW)
            if fd < 0 && errno == ELOOP {
                // The last component is a symlink: resolve it inside the context.
                let follow = agent_resolve_open_beneath(roots[0], parts.joined(separator: "/"), O_PATH)
                if follow < 0 { throw refusal(path, errno, what) }
                return node(fd: keep(follow))
            }
            if fd < 0 {
                if errno == ENOENT || errno == ENOTDIR { return nil }
                throw refusal(path, errno, what)
            }
            return node(fd: keep(fd))
        }
        var n = root()
        for p in parts {
            if p == ".." { throw BuildError(.badInput, stage: "COPY", "\(what): source \"\(path)\" must not contain ..") }
            guard n.isDirectory, let c = child(n, p) else { return nil }
            n = c
        }
        return n
    }

    private func refusal(_ path: String, _ code: Int32, _ what: String) -> BuildError {
        let why = code == EXDEV ? "leads out of the build context (through \"..\" or a symlink)"
                                : String(cString: strerror(code))
        return BuildError(.badInput, stage: "COPY", "\(what): source \"\(path)\" \(why)")
    }

    private func node(fd: Int32) -> Node {
        var st = stat()
        fstat(fd, &st)
        if (st.st_mode & S_IFMT) == S_IFDIR {
            let d = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            return Node(st: st, dirs: d >= 0 ? [keep(d)] : [])
        }
        // Other entries are read through their O_PATH descriptor (parent = fd, name "").
        return Node(st: st, parent: fd, name: "")
    }

    /// Opens a regular file's contents for reading.
    func openFile(_ n: Node) -> Int32 {
        // An O_PATH descriptor is re-opened for reading through its /proc/self/fd link.
        if n.name.isEmpty { return open("/proc/self/fd/\(n.parent)", O_RDONLY | O_CLOEXEC | O_NONBLOCK) }
        return openat(n.parent, n.name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
    }

    /// A symlink's target text.
    func linkTarget(_ n: Node) -> String {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let r = readlinkat(n.parent, n.name, &buf, buf.count - 1)
        guard r >= 0 else { return "" }
        return String(decoding: buf[0..<r].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Expands a source pattern (`*`, `?`, `[...]` in any component) to the matching paths,
    /// sorted; a pattern without wildcards is returned as is.
    func expand(_ pattern: String) -> [String] {
        let parts = pattern.split(separator: "/").map(String.init).filter { $0 != "." }
        guard parts.contains(where: { $0.contains(where: { "*?[".contains($0) }) }) else { return [pattern] }
        var current: [(path: String, node: Node)] = [("", root())]
        for p in parts {
            var next: [(String, Node)] = []
            for (path, n) in current where n.isDirectory {
                let wild = p.contains(where: { "*?[".contains($0) })
                for name in wild ? children(n).filter({ fnmatch(p, $0, FNM_PERIOD) == 0 || (fnmatch(p, $0, 0) == 0 && !$0.hasPrefix(".")) }) : [p] {
                    if let c = child(n, name) { next.append((path.isEmpty ? name : path + "/" + name, c)) }
                }
            }
            current = next
        }
        return current.map(\.path)
    }
}

private typealias FGetXattr = @convention(c) (Int32, UnsafePointer<CChar>, UnsafeMutableRawPointer?, Int) -> Int
/// Swift's Glibc module does not export <sys/xattr.h>; the symbol is looked up once.
nonisolated(unsafe) private let fgetxattrCall: FGetXattr? = {
    guard let symbol = dlsym(nil, "fgetxattr") else { return nil }
    return unsafeBitCast(symbol, to: FGetXattr.self)
}()

private typealias CopyFileRange = @convention(c) (Int32, UnsafeMutablePointer<Int64>?, Int32,
                                                   UnsafeMutablePointer<Int64>?, Int, UInt32) -> Int
/// `copy_file_range` is behind `_GNU_SOURCE` in glibc's headers; looked up once.
nonisolated(unsafe) let copyFileRangeCall: (@convention(c) (Int32, UnsafeMutablePointer<Int64>?, Int32,
                                                   UnsafeMutablePointer<Int64>?, Int, UInt32) -> Int)? = {
    guard let symbol = dlsym(nil, "copy_file_range") else { return nil }
    return unsafeBitCast(symbol, to: CopyFileRange.self)
}()
