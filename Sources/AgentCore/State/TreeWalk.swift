import Glibc

/// An iterative depth-first walk of a directory tree by descriptors, never following a
/// symlink: depth is no limit (recursion overflowed the stack at about 19,000 nested
/// folders), and at most `maxOpenDescriptors` folders are open at once, so a deep tree
/// cannot exhaust the fd limit. A folder whose descriptor was closed to stay under the
/// limit is re-opened through `..` of its child (checked to be the same inode) or, failing
/// that, by name from the root.
///
/// Only `fstatat` is used on entries, so leaves need no read permission. Folders are opened
/// `O_NOFOLLOW|O_DIRECTORY|O_NONBLOCK`: a FIFO, socket or device is never opened.
struct TreeWalk {
    static let maxOpenDescriptors = 48

    /// Called for every entry (the root too, with `parent` AT_FDCWD and depth 0; its
    /// children have depth 1): return true to descend into a directory.
    var visit: (_ parent: Int32, _ name: String, _ st: stat, _ depth: Int) -> Bool
    /// Called after a directory's children (or when it could not be opened).
    var leave: (_ parent: Int32, _ name: String, _ st: stat, _ depth: Int) -> Void = { _, _, _, _ in }
    /// Opens a directory to descend into; -1 to skip it. Default: `openDirectory`.
    var open: (_ parent: Int32, _ name: String, _ st: stat) -> Int32 = { p, n, _ in TreeWalk.openDirectory(p, n) }

    private struct Frame {
        var name: String
        var st: stat
        var fd: Int32
        var names: [String]
        var next = 0
    }

    static func openDirectory(_ parent: Int32, _ name: String) -> Int32 {
        openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
    }

    /// Walks the tree at `path`. Returns false if `path` does not exist.
    @discardableResult
    func run(_ path: String) -> Bool { run(at: AT_FDCWD, path) }

    /// Walks the tree at `name` below the folder open at `parent`.
    @discardableResult
    func run(at parent: Int32, _ name: String) -> Bool {
        var st = stat()
        guard fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return false }
        guard visit(parent, name, st, 0), isDirectory(st) else { return true }
        let rootfd = open(parent, name, st)
        guard rootfd >= 0 else { leave(parent, name, st, 0); return true }
        walk(Frame(name: name, st: st, fd: rootfd, names: Self.entries(rootfd)))
        leave(parent, name, st, 0)
        return true
    }

    /// Walks everything below the folder open at `fd` (its entries have depth 1); `fd` stays
    /// open and the folder itself is neither visited nor left.
    func runBelow(_ fd: Int32) {
        var st = stat()
        let copy = dup(fd)
        guard copy >= 0, fstat(copy, &st) == 0 else { if copy >= 0 { close(copy) }; return }
        walk(Frame(name: ".", st: st, fd: copy, names: Self.entries(copy)))
    }

    /// The loop: `root` is open and its fd is closed at the end.
    private func walk(_ root: Frame) {
        var stack = [root]
        var openCount = 1
        var lowestOpen = 1  // frames below this index (except 0) have their fd closed
        while let top = stack.indices.last {
            if stack[top].next < stack[top].names.count {
                let name = stack[top].names[stack[top].next]
                stack[top].next += 1
                let dirfd = stack[top].fd
                var child = stat()
                guard fstatat(dirfd, name, &child, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
                guard visit(dirfd, name, child, top + 1), isDirectory(child) else { continue }
                let fd = open(dirfd, name, child)
                guard fd >= 0 else { leave(dirfd, name, child, top + 1); continue }
                stack.append(Frame(name: name, st: child, fd: fd, names: Self.entries(fd)))
                openCount += 1
                // Over the limit: close the shallowest open folder but the root.
                while openCount > Self.maxOpenDescriptors, lowestOpen < stack.count - 1 {
                    if stack[lowestOpen].fd >= 0 { close(stack[lowestOpen].fd); stack[lowestOpen].fd = -1; openCount -= 1 }
                    lowestOpen += 1
                }
                continue
            }
            let frame = stack.removeLast()
            if stack.isEmpty {
                close(frame.fd)
                break
            }
            let parent = stack.count - 1
            if stack[parent].fd < 0 {
                stack[parent].fd = reopen(parent, in: stack, via: frame.fd)
                if stack[parent].fd >= 0 { openCount += 1 }
                lowestOpen = min(lowestOpen, parent)
            }
            close(frame.fd)
            openCount -= 1
            // A parent that cannot be re-opened (it moved) is abandoned with its subtree.
            guard stack[parent].fd >= 0 else { stack[parent].next = stack[parent].names.count; continue }
            leave(stack[parent].fd, frame.name, frame.st, parent + 1)
        }
    }

    /// Re-opens `stack[index]`: `..` of its child if that is still the same folder, else by
    /// name from the nearest open ancestor (intermediate folders closed again).
    private func reopen(_ index: Int, in stack: [Frame], via childfd: Int32) -> Int32 {
        let want = stack[index].st
        let up = openat(childfd, "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if up >= 0 {
            var st = stat()
            if fstat(up, &st) == 0 && st.st_dev == want.st_dev && st.st_ino == want.st_ino { return up }
            close(up)
        }
        var base = index - 1
        while base > 0 && stack[base].fd < 0 { base -= 1 }
        var fd = stack[base].fd
        var owned = false
        for j in (base + 1)...index {
            let next = Self.openDirectory(fd, stack[j].name)
            if owned { close(fd) }
            guard next >= 0 else { return -1 }
            fd = next
            owned = true
        }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_dev == want.st_dev, st.st_ino == want.st_ino else { close(fd); return -1 }
        return fd
    }

    private func isDirectory(_ st: stat) -> Bool { (st.st_mode & S_IFMT) == S_IFDIR }

    /// Names in the folder open at `fd`, without `.` and `..`; empty if unreadable.
    static func entries(_ fd: Int32) -> [String] {
        let copy = dup(fd)
        guard copy >= 0 else { return [] }
        guard let dir = fdopendir(copy) else { close(copy); return [] }
        defer { closedir(dir) }
        rewinddir(dir)  // a dup shares the offset: the caller may have read `fd` before
        var names: [String] = []
        while let e = readdir(dir) {
            let name = withUnsafePointer(to: &e.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()  // a stable order for messages and tests
    }
}
