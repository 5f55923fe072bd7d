import FoundationEssentials
import Glibc

/// Copies entries of a `SourceTree` into a staging folder by descriptor: folders, regular
/// files (contents, mode, mtime), symlinks (as text, never followed). FIFOs, sockets and
/// devices are skipped. `--chmod` applies to every file and folder; owners are the
/// layer writer's (`--chown`), not the staging folder's.
struct TreeCopier {
    let tree: SourceTree
    let chmod: mode_t?
    let isContext: Bool
    let excluded: @Sendable (String) -> Bool
    /// The first copy failure (the build stops on it).
    var failure: String?
    static let maxDepth = 256

    init(tree: SourceTree, chmod: mode_t?, isContext: Bool, excluded: @escaping @Sendable (String) -> Bool) {
        self.tree = tree
        self.chmod = chmod
        self.isContext = isContext
        self.excluded = excluded
    }

    /// Copies the children of folder `node` into `dir` (or into a new folder `name` there).
    mutating func copyContents(_ node: SourceTree.Node, path: String, into dir: Int32, name: String?) throws(BuildError) {
        if let name {
            try copyEntry(node, path: path, into: dir, name: name)
            return
        }
        try children(node, path: path, into: dir, depth: 0)
    }

    private mutating func children(_ node: SourceTree.Node, path: String, into dir: Int32, depth: Int) throws(BuildError) {
        guard depth < Self.maxDepth else {
            throw BuildError(.badInput, stage: "COPY", "\(path): folders nested deeper than \(Self.maxDepth)")
        }
        for child in tree.children(node) {
            let childPath = path.isEmpty ? child : path + "/" + child
            if isContext && excluded(childPath) {
                // An excluded folder may still hold re-included (`!pattern`) entries.
                guard let c = tree.child(node, child), c.isDirectory, hasIncluded(c, path: childPath, depth: depth + 1) else { continue }
            }
            guard let c = tree.child(node, child) else { continue }
            try copyEntry(c, path: childPath, into: dir, name: child, depth: depth + 1)
        }
    }

    private func hasIncluded(_ node: SourceTree.Node, path: String, depth: Int) -> Bool {
        guard depth < Self.maxDepth else { return false }
        for child in tree.children(node) {
            let p = path + "/" + child
            if !excluded(p) { return true }
            if let c = tree.child(node, child), c.isDirectory, hasIncluded(c, path: p, depth: depth + 1) { return true }
        }
        return false
    }

    mutating func copyEntry(_ node: SourceTree.Node, path: String, into dir: Int32, name: String, depth: Int = 0) throws(BuildError) {
        let st = node.st
        var times = [st.st_atim, st.st_mtim]
        let mode = chmod ?? (st.st_mode & 0o7777)
        switch st.st_mode & S_IFMT {
        case S_IFDIR:
            if mkdirat(dir, name, 0o700) != 0 && errno != EEXIST { fail(path, "mkdir"); return }
            let sub = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard sub >= 0 else { fail(path, "open"); return }
            defer { close(sub) }
            try children(node, path: path, into: sub, depth: depth)
            // The layer writer must still list the folder: owner r-x stays.
            fchmod(sub, mode | 0o500)
            futimens(sub, &times)
        case S_IFREG:
            unlinkat(dir, name, 0)
            let src = tree.openFile(node)
            guard src >= 0 else { fail(path, "open"); return }
            defer { close(src) }
            let dst = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard dst >= 0 else { fail(path, "create"); return }
            defer { close(dst) }
            var buf = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = copyFileRangeCall?(src, nil, dst, nil, 1 << 30, 0) ?? -1
                if n > 0 { continue }
                if n == 0 { break }
                // Not supported between these files: plain reads and writes.
                lseek(src, 0, SEEK_SET); ftruncate(dst, 0); lseek(dst, 0, SEEK_SET)
                while true {
                    let r = read(src, &buf, buf.count)
                    if r <= 0 { break }
                    var off = 0
                    while off < r {
                        let w = buf.withUnsafeBytes { write(dst, $0.baseAddress! + off, r - off) }
                        if w <= 0 { fail(path, "write"); return }
                        off += w
                    }
                }
                break
            }
            fchmod(dst, mode)
            futimens(dst, &times)
        case S_IFLNK:
            unlinkat(dir, name, 0)
            guard symlinkat(tree.linkTarget(node), dir, name) == 0 else { fail(path, "symlink"); return }
            utimensat(dir, name, &times, AT_SYMLINK_NOFOLLOW)
        default:
            break  // FIFOs, sockets and devices are not copied
        }
    }

    private mutating func fail(_ path: String, _ op: String) {
        if failure == nil { failure = "\(path): \(op): \(String(cString: strerror(errno)))" }
    }
}
