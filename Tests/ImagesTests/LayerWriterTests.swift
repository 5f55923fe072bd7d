import Foundation
import Testing
@testable import Images

/// Runs a program, returning its exit status and standard output.
@discardableResult
func run(_ argv: [String], stdin: FileHandle? = nil) throws -> (status: Int32, out: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: argv[0])
    p.arguments = Array(argv.dropFirst())
    let out = Pipe()
    p.standardOutput = out
    if let stdin { p.standardInput = stdin }
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// The entries of a stored layer blob as Python's tarfile reads them, one line each:
/// `name type mode uid gid mtime size linkname [xattrs]`.
func listLayer(_ path: String) throws -> [String] {
    let script = """
    import sys, tarfile
    with tarfile.open(sys.argv[1], "r:*") as t:
        for m in t:
            x = ",".join(sorted(k[len("SCHILY.xattr."):] for k in m.pax_headers if k.startswith("SCHILY.xattr.")))
            print(m.name, m.type.decode(), oct(m.mode), m.uid, m.gid, int(m.mtime), m.size, m.linkname, m.uname + "|" + m.gname, x)
    """
    return try run(["/usr/bin/python3", "-c", script, path]).out.split(separator: "\n").map(String.init)
}

func openDir(_ path: String) -> Int32 { open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }

func writeTree(_ root: String, mtime: Int) throws {
    let fm = FileManager.default
    try fm.createDirectory(atPath: root + "/b/c", withIntermediateDirectories: true)
    try fm.createDirectory(atPath: root + "/a-dir", withIntermediateDirectories: true)
    try "hello\n".write(toFile: root + "/b/c/file", atomically: false, encoding: .utf8)
    try "x".write(toFile: root + "/a", atomically: false, encoding: .utf8)
    try fm.createSymbolicLink(atPath: root + "/b/link", withDestinationPath: "../../../etc/shadow")
    link(root + "/b/c/file", root + "/b/hard")
    chmod(root + "/a", 0o4755)
    for p in ["", "/a", "/a-dir", "/b", "/b/c", "/b/c/file", "/b/hard"] {
        var t = [timeval(tv_sec: mtime, tv_usec: 123), timeval(tv_sec: mtime, tv_usec: 456)]
        utimes(root + p, &t)
    }
}

@Suite("LayerWriter")
struct LayerWriterTests {
    @Test func sameTreeWithDifferentTimesUnderSourceDateEpochGivesTheSameDigest() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try ContentStore(stateDirectory: dir)
        var digests: [Digest] = []
        for (i, mtime) in [1_800_000_000, 1_900_000_000].enumerated() {
            let tree = dir + "/tree\(i)"
            try writeTree(tree, mtime: mtime)
            var o = LayerWriteOptions()
            o.sourceDateEpoch = 1_700_000_000
            let fd = openDir(tree)
            defer { close(fd) }
            let l = try LayerWriter(store: store, options: o).write(.directory(fd))
            #expect(l.descriptor.mediaType == "application/vnd.oci.image.layer.v1.tar+gzip")
            #expect(store.has(l.descriptor.digest))
            #expect(l.entries == 7)
            digests.append(l.descriptor.digest)
            // The uncompressed tar hashes to the diff_id.
            #expect(try LayerUnpacker.diffID(ofBlob: store.blobPath(l.descriptor.digest), image: "t", layer: l.descriptor.digest) == l.diffID)
        }
        #expect(digests[0] == digests[1])
        // gzip without a timestamp or a name in its header (RFC 1952: MTIME bytes 4-7, FLG 3).
        let head = try [UInt8](Data(contentsOf: URL(fileURLWithPath: store.blobPath(digests[0]))).prefix(10))
        #expect(head[0] == 0x1f && head[1] == 0x8b && head[3] == 0 && head[4..<8].allSatisfy { $0 == 0 })
        let lines = try listLayer(store.blobPath(digests[0]))
        // Sorted bytewise by path ("a-dir" < "b" and "a" first), a folder before its
        // contents, numeric owners only, times clamped, the second name of an inode a link.
        #expect(lines.map { $0.split(separator: " ")[0] } == ["a", "a-dir", "b", "b/c", "b/c/file", "b/hard", "b/link"])
        #expect(lines[0].hasPrefix("a 0 0o4755 "))
        #expect(lines.allSatisfy { $0.contains(" 1700000000 ") && $0.contains(" |") })
        #expect(lines[5].hasPrefix("b/hard 1 ") && lines[5].contains("b/c/file"))
        #expect(lines[6].contains("../../../etc/shadow"))
    }

    @Test func timesBeforeTheEpochStayAndDifferentContentDiffers() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try ContentStore(stateDirectory: dir)
        try writeTree(dir + "/t", mtime: 1_000_000_000)
        var o = LayerWriteOptions()
        o.sourceDateEpoch = 1_700_000_000
        o.compression = .zstd
        let fd = openDir(dir + "/t")
        defer { close(fd) }
        let a = try LayerWriter(store: store, options: o).write(.directory(fd))
        #expect(a.descriptor.mediaType.hasSuffix("+zstd"))
        #expect(try LayerUnpacker.diffID(ofBlob: store.blobPath(a.descriptor.digest), image: "t", layer: a.descriptor.digest) == a.diffID)
        try "changed".write(toFile: dir + "/t/a", atomically: false, encoding: .utf8)
        let b = try LayerWriter(store: store, options: o).write(.directory(fd))
        #expect(a.diffID != b.diffID)
        o.compression = .uncompressed
        let c = try LayerWriter(store: store, options: o).write(.directory(fd))
        #expect(c.descriptor.digest == c.diffID && c.diffID == b.diffID)
        #expect(try listLayer(store.blobPath(c.diffID))[1].hasPrefix("a-dir 5 0o755 0 0 1000000000 "))
    }

    @Test func ownersAreMappedFromHostToContainer() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try ContentStore(stateDirectory: dir)
        try FileManager.default.createDirectory(atPath: dir + "/t", withIntermediateDirectories: true)
        try "x".write(toFile: dir + "/t/mine", atomically: false, encoding: .utf8)
        try "y".write(toFile: dir + "/t/other", atomically: false, encoding: .utf8)
        chown(dir + "/t/other", 4242, 4242)
        var o = LayerWriteOptions()
        o.compression = .uncompressed
        o.idMapping = IDMapping(uids: [IDRange(containerID: 0, hostID: getuid(), count: 1), IDRange(containerID: 1000, hostID: 4242, count: 1)],
                                gids: [IDRange(containerID: 0, hostID: getgid(), count: 1)])
        let fd = openDir(dir + "/t")
        defer { close(fd) }
        let l = try LayerWriter(store: store, options: o).write(.directory(fd))
        let lines = try listLayer(store.blobPath(l.diffID))
        #expect(lines[0].hasPrefix("mine 0 0o644 0 0 "))
        // Host uid 4242 is container 1000; its gid 4242 is outside every range: nobody.
        #expect(getuid() != 0 || lines[1].hasPrefix("other 0 0o644 1000 65534 "))
    }

    @Test func emptyTreeIsAnEmptyLayer() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try ContentStore(stateDirectory: dir)
        try FileManager.default.createDirectory(atPath: dir + "/t", withIntermediateDirectories: true)
        let fd = openDir(dir + "/t")
        defer { close(fd) }
        let l = try LayerWriter(store: store).write(.directory(fd))
        #expect(l.isEmpty)
        #expect(l.uncompressedSize == 1024)
    }
}

@Suite("LayerWriter names and xattrs")
struct LayerWriterNameTests {
    @Test func namesAreBytesAndXattrsAreKeptButOverlaysDropped() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try ContentStore(stateDirectory: dir)
        let t = dir + "/t"
        try FileManager.default.createDirectory(atPath: t, withIntermediateDirectories: true)
        // A UTF-8 name, a name that is not UTF-8, and a file with user and overlay xattrs.
        let script = """
        import os, sys
        t = sys.argv[1]
        open(os.path.join(t, "café"), "w").write("1")
        open(os.path.join(t.encode(), b"raw\\xff"), "w").write("2")
        p = os.path.join(t, "x"); open(p, "w").write("3")
        os.setxattr(p, "user.keep", b"v1"); os.setxattr(p, "user.overlay.origin", b"o")
        """
        #expect(try run(["/usr/bin/python3", "-c", script, t]).status == 0)
        var o = LayerWriteOptions()
        o.compression = .uncompressed
        let fd = openDir(t)
        defer { close(fd) }
        let l = try LayerWriter(store: store, options: o).write(.directory(fd))
        let check = """
        import sys, tarfile
        with tarfile.open(sys.argv[1], encoding="utf-8", errors="surrogateescape") as t:
            for m in t:
                print(m.name.encode("utf-8", "surrogateescape").hex(), sorted(k for k in m.pax_headers if "xattr" in k))
        """
        let lines = try run(["/usr/bin/python3", "-c", check, store.blobPath(l.diffID)]).out.split(separator: "\n").map(String.init)
        #expect(lines.count == 3)
        #expect(lines[0].hasPrefix(Data("café".utf8).map { String(format: "%02x", $0) }.joined()))
        #expect(lines[1].hasPrefix("726177ff"))
        #expect(lines[2].hasPrefix("78 ") && lines[2].contains("user.keep") && !lines[2].contains("overlay"), "\(lines)")
    }
}

@Suite("LayerWriter file capabilities")
struct LayerWriterCapabilityTests {
    @Test(.enabled(if: getuid() == 0, "setting security.capability needs CAP_SETFCAP (ci/test.sh runs the unit tests as root)"))
    func securityCapabilityIsKeptFromAFolderAndFromATarStream() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try ContentStore(stateDirectory: dir)
        let t = dir + "/t"
        try FileManager.default.createDirectory(atPath: t, withIntermediateDirectories: true)
        try "ping".write(toFile: t + "/ping", atomically: false, encoding: .utf8)
        // VFS_CAP_REVISION_2 with CAP_NET_RAW (13) permitted and effective.
        let set = "import os, sys; os.setxattr(sys.argv[1], 'security.capability', bytes.fromhex('0100000200200000000000000000000000000000'))"
        #expect(try run(["/usr/bin/python3", "-c", set, t + "/ping"]).status == 0)
        var o = LayerWriteOptions()
        o.compression = .uncompressed
        let fd = openDir(t)
        defer { close(fd) }
        let l = try LayerWriter(store: store, options: o).write(.directory(fd))
        let lines = try listLayer(store.blobPath(l.diffID))
        #expect(lines.count == 1 && lines[0].hasSuffix(" security.capability"), "\(lines)")
        let streamed = try layerFromCommand(["/usr/bin/tar", "--sort=name", "--format=pax", "--numeric-owner", "--xattrs",
                                             "--xattrs-include=*", "-C", t, "-cf", "-", "."], store: store, options: o).get()
        #expect(streamed.diffID == l.diffID)
    }
}
