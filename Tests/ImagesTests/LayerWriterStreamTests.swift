import Foundation
import Testing
@testable import Images

/// Writes a layer from the tar that `argv` prints on its standard output (a pipe).
func layerFromCommand(_ argv: [String], store: ContentStore, options: LayerWriteOptions) throws -> Result<WrittenLayer, ImageError> {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: argv[0])
    p.arguments = Array(argv.dropFirst())
    let pipe = Pipe()
    p.standardOutput = pipe
    try p.run()
    let fd = pipe.fileHandleForReading.fileDescriptor
    let r: Result<WrittenLayer, ImageError>
    do { r = .success(try LayerWriter(store: store, options: options).write(.tarStream(fd))) } catch let e as ImageError { r = .failure(e) }
    // Drain what is left so the writer never blocks, then reap it.
    _ = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return r
}

/// The blobs in the store (a failed write must leave none behind, nor a temp file).
func blobCount(_ store: ContentStore) -> Int {
    ((try? FileManager.default.contentsOfDirectory(atPath: store.root + "/blobs/sha256")) ?? []).count
        + ((try? FileManager.default.contentsOfDirectory(atPath: store.root + "/tmp")) ?? []).count
}

/// Makes an overlayfs upper folder the way a RUN leaves it: an unprivileged overlay
/// (a user namespace, `userxattr`) over a lower folder, where a lower file is deleted
/// (a 0:0 character device whiteout) and a lower folder replaced (an opaque folder).
func makeUpperDir(_ dir: String) throws -> String {
    let script = """
    set -e
    mkdir -p \(dir)/lower/keep \(dir)/lower/dir \(dir)/upper \(dir)/work \(dir)/merged
    echo a > \(dir)/lower/gone; echo b > \(dir)/lower/dir/old; echo c > \(dir)/lower/keep/file
    unshare -Urm sh -ec '
      mount -t overlay overlay -o lowerdir=\(dir)/lower,upperdir=\(dir)/upper,workdir=\(dir)/work,userxattr \(dir)/merged
      rm \(dir)/merged/gone
      rm -r \(dir)/merged/dir; mkdir \(dir)/merged/dir; echo new > \(dir)/merged/dir/new
      echo added > \(dir)/merged/keep/added
      umount \(dir)/merged'
    """
    let r = try run(["/bin/sh", "-c", script])
    #expect(r.status == 0)
    return dir + "/upper"
}

@Suite("LayerWriter streams and whiteouts")
struct LayerWriterStreamTests {
    @Test func overlayUpperWhiteoutsBecomeOCIWhiteoutsFromAFolderAndFromATarStream() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try ContentStore(stateDirectory: dir)
        let upper = try makeUpperDir(dir)
        var o = LayerWriteOptions()
        o.convertOverlayWhiteouts = true
        o.compression = .uncompressed
        o.sourceDateEpoch = 1_700_000_000
        let fd = openDir(upper)
        defer { close(fd) }
        let fromDir = try LayerWriter(store: store, options: o).write(.directory(fd))
        let lines = try listLayer(store.blobPath(fromDir.diffID))
        #expect(lines.map { String($0.split(separator: " ")[0]) } == [".wh.gone", "dir", "dir/.wh..wh..opq", "dir/new", "keep", "keep/added"])
        // No overlay xattr survives (user.overlay.opaque, .origin, .impure ...).
        #expect(!lines.contains { $0.contains("overlay.") })
        #expect(lines[0].hasPrefix(".wh.gone 0 "))
        // The same upper folder as `tar` in the namespace streams it gives the same layer.
        let streamed = try layerFromCommand(["/usr/bin/tar", "--sort=name", "--format=pax", "--numeric-owner", "--xattrs",
                                             "--xattrs-include=*", "-C", upper, "-cf", "-", "."], store: store, options: o).get()
        #expect(streamed.diffID == fromDir.diffID)
    }

    @Test func withoutConversionDevicesStayDevices() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try ContentStore(stateDirectory: dir)
        let upper = try makeUpperDir(dir)
        var o = LayerWriteOptions()
        o.compression = .uncompressed
        let fd = openDir(upper)
        defer { close(fd) }
        let l = try LayerWriter(store: store, options: o).write(.directory(fd))
        let lines = try listLayer(store.blobPath(l.diffID))
        #expect(lines.contains { $0.hasPrefix("gone 3 ") })
        #expect(!lines.contains { $0.contains(".wh.") })
    }

    @Test(arguments: [
        (#"[{"name": "../escape", "data": "x"}]"#, "../escape", "leads out of the layer"),
        (#"[{"name": "/etc/passwd", "data": "x"}]"#, "/etc/passwd", "is absolute"),
        (#"[{"name": "a", "type": "hardlink", "target": "missing"}]"#, "a", "not an earlier file"),
        (#"[{"name": "a", "type": "hardlink", "target": "../../etc/shadow"}]"#, "a", "leads out of the layer"),
        (#"[{"name": "x", "data": "1"}, {"name": "./x", "data": "2"}]"#, "x", "listed twice"),
    ])
    func hostileStreamsFailNamingTheEntryAndStoreNothing(entries: String, entry: String, problem: String) throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/s", withIntermediateDirectories: true)
        let store = try ContentStore(stateDirectory: dir + "/s")
        let json = try JSONSerialization.jsonObject(with: Data(entries.utf8)) as! [[String: String]]
        let tar = try makeTar(dir, "h.tar", json)
        let before = blobCount(store)
        let r = try layerFromCommand(["/bin/cat", tar], store: store, options: LayerWriteOptions())
        guard case .failure(let e) = r else { Issue.record("hostile stream accepted"); return }
        #expect("\(e)".contains(entry) && "\(e)".contains(problem), "\(e)")
        #expect(blobCount(store) == before)
    }

    @Test func aTruncatedStreamFailsAndStoresNothing() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/s", withIntermediateDirectories: true)
        let store = try ContentStore(stateDirectory: dir + "/s")
        let big = String(repeating: "0123456789", count: 10_000)
        let tar = try makeTar(dir, "t.tar", [["name": "a", "data": "x"], ["name": "big", "data": big]])
        let r = try layerFromCommand(["/usr/bin/head", "-c", "20000", tar], store: store, options: LayerWriteOptions())
        guard case .failure(let e) = r else { Issue.record("truncated stream accepted"); return }
        #expect("\(e)".contains("big") && "\(e)".contains("breaks off"), "\(e)")
        #expect(blobCount(store) == 0)
    }

    @Test func boundsOnEntriesBytesAndNameLengthHold() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/s", withIntermediateDirectories: true)
        let store = try ContentStore(stateDirectory: dir + "/s")
        let tar = try makeTar(dir, "b.tar", [["name": "a", "data": "xx"], ["name": "b", "data": "yy"], ["name": "c", "data": "zz"]])
        var o = LayerWriteOptions()
        o.maxEntries = 2
        let many = try layerFromCommand(["/bin/cat", tar], store: store, options: o)
        #expect(many.failureText.contains("more than 2 entries"))
        o = LayerWriteOptions()
        o.maxBytes = 5
        let large = try layerFromCommand(["/bin/cat", tar], store: store, options: o)
        #expect(large.failureText.contains("\"c\"") && large.failureText.contains("more than 5 bytes"))
        let long = try makeTar(dir, "l.tar", [["name": String(repeating: "d/", count: 2100) + "f", "data": "x"]])
        let r = try layerFromCommand(["/bin/cat", long], store: store, options: LayerWriteOptions())
        #expect(r.failureText.contains("longer than 4096 bytes"))
        #expect(blobCount(store) == 0)
    }

    @Test func aHostileFolderTreeKeepsSymlinksAsTextAndDevicesAsEntries() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/s", withIntermediateDirectories: true)
        let store = try ContentStore(stateDirectory: dir + "/s")
        let t = dir + "/t"
        try FileManager.default.createDirectory(atPath: t + "/sub", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: t + "/escape", withDestinationPath: "/")
        try FileManager.default.createSymbolicLink(atPath: t + "/sub/up", withDestinationPath: "../../..")
        mkfifo(t + "/fifo", 0o600)
        var o = LayerWriteOptions()
        o.compression = .uncompressed
        let fd = openDir(t)
        defer { close(fd) }
        let l = try LayerWriter(store: store, options: o).write(.directory(fd))
        let lines = try listLayer(store.blobPath(l.diffID))
        #expect(lines.map { String($0.split(separator: " ")[0]) } == ["escape", "fifo", "sub", "sub/up"])
        #expect(lines[0].contains(" 2 ") && lines[0].hasSuffix("/ | "))
        // Depth bound.
        o.maxDepth = 0
        #expect(throws: ImageError.self) { try LayerWriter(store: store, options: o).write(.directory(fd)) }
    }
}

extension Result where Failure == ImageError {
    var failureText: String { if case .failure(let e) = self { return "\(e)" }; return "(no error)" }
}
