import AgentSupport
import Crypto
import Dockerfile
import FoundationEssentials
import Glibc
import Images
import Sandbox

extension BuildExecutor {
    /// COPY and ADD: the sources are selected (globs, `.dockerignore` for the context),
    /// checksummed for the cache key (mode, owner, size, type, link target and contents,
    /// never mtime); on a miss they are copied into a staging folder that becomes the layer.
    func copyInstruction(_ inst: Instruction, _ c: CopyCommand, into s: inout StageResult, file: Dockerfile,
                         stageIndex: Int, globals: Variables, inputs: [Int: StageResult],
                         vertex v: BuildProgress.Vertex) async throws(BuildError) {
        let vars = s.expansionVariables
        let what = c.isAdd ? "ADD" : "COPY"
        var sources: [String] = []
        for src in c.sources { sources += [try expand(src, vars, inst)] }
        let dest = try expand(c.destination, vars, inst)
        if c.isAdd, let url = sources.first(where: { $0.contains("://") }) {
            throw BuildError(.badInput, stage: what, located(inst, "ADD \(url): fetching URLs is not supported in builds (the build has no network unless the agent policy allows it; download in a RUN or add the file to the context)"))
        }
        // The tree the sources come from.
        let tree: SourceTree
        var fromKey = "context"
        if let f = c.from {
            let from = try expand(f, globals.merging(vars), inst)
            if let i = StageGraph.fromIndex(from, in: file, stage: stageIndex), let dep = inputs[i] {
                tree = try SourceTree(layers: dep.snapshots)
                fromKey = dep.key.description
            } else {
                let base = try pullBase(from, inst)
                tree = try SourceTree(layers: base.snapshots)
                fromKey = base.key.description
            }
        } else {
            tree = SourceTree(context: request.contextFD)
            tree.excluded = contextExcluded
        }
        // Selected sources: (path in the tree, node).
        var selected: [(path: String, node: SourceTree.Node)] = []
        for src in sources {
            let matches = tree.expand(src)
            var any = false
            for m in matches {
                if tree.isContext, m != "." && !m.isEmpty, contextExcluded(normalize(m).dropFirst().description) { continue }
                if let n = try tree.lookup(m, what: located(inst, what)) { selected.append((m, n)); any = true }
            }
            if !any {
                throw BuildError(.badInput, stage: what, located(inst, "\(what) \(src): no such file or folder in \(c.from.map { "stage or image \($0)" } ?? "the build context")"))
            }
        }
        let destPath = s.absolute(dest)
        let lower = try SourceTree(layers: s.snapshots)
        let destNode = s.snapshots.isEmpty ? nil : try? lower.lookup(destPath, what: what)
        let intoDirectory = dest.hasSuffix("/") || dest == "." || dest.hasSuffix("/.") || selected.count > 1 || (destNode ?? nil)?.isDirectory == true
            || (selected.count == 1 && selected[0].node.isDirectory)
        var chown: (UInt32, UInt32)? = nil
        if let o = c.chown {
            let text = try expand(o, vars, inst)
            do { chown = try ImageUser.resolve(text, layers: s.snapshots, image: "stage") } catch {
                throw BuildError(.badInput, stage: what, located(inst, "\(what) --chown=\(text): \(error.problem)"))
            }
        }
        var chmod: mode_t? = nil
        if let m = c.chmod {
            guard let n = UInt32(m, radix: 8), n <= 0o7777 else {
                throw BuildError(.badInput, stage: what, located(inst, "\(what) --chmod=\(m): only octal modes (0755) are supported"))
            }
            chmod = mode_t(n)
        }

        var key = BuildCacheKey(parent: s.key, kind: what)
        key.add("sources", sources)
        key.add("dest", [destPath, intoDirectory ? "dir" : "file"])
        key.add("flags", [c.chown ?? "", c.chmod ?? "", fromKey, c.link ? "link" : "", chown.map { "\($0.0):\($0.1)" } ?? ""])
        var sum = SHA256()
        for sel in selected { checksum(tree, sel.node, path: sel.path, into: &sum) }
        for inline in c.inlineSources {
            let data = inline.expands ? try expand(inline.data, vars, inst) : inline.data
            key.add("inline", [inline.path, data])
        }
        key.add(Array(sum.finalize()))
        let k = key.finish()
        let createdBy = "\(what) " + (c.sources + [c.destination]).joined(separator: " ") + " # buildkit"
        if !request.noCache, let e = cache.lookup(k) {
            progress.cached(v)
            counters.addCached()
            try record(e.written, createdBy: e.createdBy, key: k, into: &s)
            return
        }
        let stage = work + "/copy-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        guard mkdir(stage, 0o755) == 0 else { throw BuildError(.agent, stage: what, "cannot create \(stage): \(String(cString: strerror(errno)))") }
        defer { Task.detached { await RootlessRemove.remove(stage) } }
        let root = open(stage, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        defer { close(root) }
        // The destination's parent folders, with the modes the image gives them.
        let destParts = normalize(destPath).split(separator: "/").map(String.init)
        let parentParts = intoDirectory ? destParts : Array(destParts.dropLast())
        var dir = dup(root)
        var sofar = ""
        for p in parentParts {
            sofar += "/" + p
            let mode = ((try? lower.lookup(sofar, what: what)) ?? nil).map { $0.st.st_mode & 0o7777 } ?? 0o755
            mkdirat(dir, p, mode | 0o700)
            let next = openat(dir, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            close(dir)
            guard next >= 0 else { throw BuildError(.agent, stage: what, "cannot create \(sofar) in the staging folder") }
            dir = next
        }
        defer { close(dir) }
        var copier = TreeCopier(tree: tree, chmod: chmod, isContext: tree.isContext, excluded: contextExcluded)
        for sel in selected {
            let name = intoDirectory ? (sel.node.isDirectory ? nil : String(sel.path.split(separator: "/").last ?? "")) : destParts.last!
            if c.isAdd, !sel.node.isDirectory, tree.isContext, Self.isArchive(tree, sel.node) {
                try await extractArchive(tree, sel.node, into: stage + "/" + parentParts.joined(separator: "/"), inst: inst)
                continue
            }
            if sel.node.isDirectory {
                try copier.copyContents(sel.node, path: normalize(sel.path).dropFirst().description, into: dir, name: name)
            } else {
                try copier.copyEntry(sel.node, path: normalize(sel.path).dropFirst().description, into: dir, name: name!)
            }
        }
        for inline in c.inlineSources {
            let data = inline.expands ? try expand(inline.data, vars, inst) : inline.data
            let name = intoDirectory ? inline.path : destParts.last!
            let fd = openat(dir, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, chmod ?? 0o644)
            guard fd >= 0 else { throw BuildError(.agent, stage: what, "cannot write \(name) in the staging folder") }
            _ = Array(data.utf8).withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            close(fd)
        }
        if let e = copier.failure { throw BuildError(.agent, stage: what, located(inst, "\(what): \(e)")) }
        var writer = LayerWriter(store: store.content)
        writer.options.compression = request.zstd ? .zstd : .gzip
        writer.options.sourceDateEpoch = request.sourceDateEpoch
        let (u, g) = chown ?? (0, 0)
        writer.options.idMapping = IDMapping(uids: [IDRange(containerID: u, hostID: getuid(), count: 1)],
                                            gids: [IDRange(containerID: g, hostID: getgid(), count: 1)])
        let layer: WrittenLayer
        let hold = try store.holdPruneForBuild()
        defer { hold.end() }
        do { layer = try writer.write(.directory(root)) } catch {
            throw BuildError(.agent, stage: what, located(inst, "\(what): cannot write the layer: \(error)"))
        }
        try leases.list(blob: layer.descriptor.digest)
        counters.addRan()
        let entry = BuildCacheEntry(written: layer, createdBy: redact(createdBy))
        try cache.store(k, entry)
        try record(layer, createdBy: entry.createdBy, key: k, into: &s)
        progress.done(v)
    }

    /// Whether a context path is excluded by `.dockerignore` (relative, no leading slash).
    var contextExcluded: @Sendable (String) -> Bool { ignore.excluded }

    /// Content checksum of a selected source: for every entry below it, sorted, its
    /// relative path, type, mode, owner, size, link target and a hash of its contents.
    func checksum(_ tree: SourceTree, _ node: SourceTree.Node, path: String, into h: inout SHA256) {
        func add(_ s: String) { var n = UInt64(s.utf8.count).bigEndian; withUnsafeBytes(of: &n) { h.update(bufferPointer: $0) }; h.update(data: Array(s.utf8)) }
        let st = node.st
        add(path)
        add("\(st.st_mode):\(st.st_uid):\(st.st_gid)")
        switch st.st_mode & S_IFMT {
        case S_IFREG:
            add("\(st.st_size)")
            let fd = tree.openFile(node)
            if fd >= 0 {
                var buf = [UInt8](repeating: 0, count: 1 << 16)
                while true {
                    let n = read(fd, &buf, buf.count)
                    if n <= 0 { break }
                    h.update(data: buf[0..<n])
                }
                close(fd)
            }
        case S_IFLNK:
            add(tree.linkTarget(node))
        case S_IFDIR:
            for name in tree.children(node) {
                let childPath = path.isEmpty || path == "." ? name : path + "/" + name
                if tree.isContext, contextExcluded(normalize(childPath).dropFirst().description) { continue }
                if let c = tree.child(node, name) { checksum(tree, c, path: childPath, into: &h) }
            }
        default:
            break
        }
    }

    static func isArchive(_ tree: SourceTree, _ node: SourceTree.Node) -> Bool {
        let fd = tree.openFile(node)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var head = [UInt8](repeating: 0, count: 512)
        let n = pread(fd, &head, 512, 0)
        guard n >= 6 else { return false }
        if head[0] == 0x1f && head[1] == 0x8b { return true }                                   // gzip
        if head[0] == 0x42 && head[1] == 0x5a && head[2] == 0x68 { return true }                // bzip2
        if head[0..<6] == [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] { return true }                  // xz
        if head[0..<4] == [0x28, 0xb5, 0x2f, 0xfd] { return true }                              // zstd
        return n >= 262 && Array(head[257..<262]) == Array("ustar".utf8)                        // tar
    }

    /// `ADD` of a local archive: extracted by the host's tar inside a sandbox whose only
    /// writable folder is the staging destination (a hostile archive cannot reach
    /// anything else; tar refuses `..` and absolute names itself).
    func extractArchive(_ tree: SourceTree, _ node: SourceTree.Node, into dest: String, inst: Instruction) async throws(BuildError) {
        let fd = tree.openFile(node)
        guard fd >= 0, let host = HostPath(descriptor: fd) else { throw BuildError(.agent, stage: "ADD", located(inst, "ADD: cannot open the archive")) }
        defer { close(fd) }
        var c = ContainerConfiguration(command: ["/usr/bin/tar", "-x", "--no-same-owner", "--no-same-permissions", "-f", "/src/archive", "-C", "/dst"])
        c.rootfs = .host
        c.mounts = [.bind(host, "/src/archive", readOnly: true), .bind(dest, "/dst", readOnly: false)]
        c.seccomp = seccomp
        c.capabilities = .dockerDefault
        c.idMapping = .single
        c.allowRoot = allowRoot
        c.timeout = .seconds(3600)
        do {
            let container = try await RunningContainer.start(c)
            var tail: [UInt8] = []
            for await chunk in container.output where tail.count < 2048 { tail += chunk.bytes }
            let r = await container.wait()
            guard r.status == .exited(0) else {
                throw BuildError(.badInput, stage: "ADD", located(inst, "ADD: the archive could not be extracted: " + redact(String(decoding: tail, as: UTF8.self))))
            }
        } catch let e as BuildError { throw e } catch {
            throw BuildError(.agent, stage: "ADD", located(inst, "ADD: \(error)"))
        }
    }
}
