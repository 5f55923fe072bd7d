import Foundation
import Testing
@testable import Images

/// Builds a tar with Python's tarfile (entries described as JSON) in a fresh folder.
func makeTar(_ dir: String, _ name: String, _ entries: [[String: String]], gzip: Bool = false) throws -> String {
    let path = dir + "/" + name
    let script = """
    import json, sys, tarfile, io
    entries = json.loads(sys.argv[2])
    with tarfile.open(sys.argv[1], "w:gz" if sys.argv[3] == "1" else "w") as t:
        for e in entries:
            i = tarfile.TarInfo(e["name"])
            kind = e.get("type", "file")
            data = e.get("data", "").encode()
            if kind == "dir": i.type = tarfile.DIRTYPE; i.mode = 0o755
            elif kind == "symlink": i.type = tarfile.SYMTYPE; i.linkname = e["target"]
            elif kind == "hardlink": i.type = tarfile.LNKTYPE; i.linkname = e["target"]
            elif kind == "chr": i.type = tarfile.CHRTYPE; i.devmajor = 1; i.devminor = 3
            else: i.size = len(data); i.mode = int(e.get("mode", "644"), 8)
            if "uid" in e: i.uid = i.gid = int(e["uid"])
            if "gid" in e: i.gid = int(e["gid"])
            t.addfile(i, io.BytesIO(data) if kind == "file" else None)
    """
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
    let json = String(decoding: try JSONSerialization.data(withJSONObject: entries), as: UTF8.self)
    p.arguments = ["-c", script, path, json, gzip ? "1" : "0"]
    try p.run()
    p.waitUntilExit()
    #expect(p.terminationStatus == 0)
    return path
}

/// An extended attribute's value (Glibc's Swift module lacks getxattr).
func xattr(_ path: String, _ name: String) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
    p.arguments = ["-c", "import os, sys; sys.stdout.write(os.getxattr(sys.argv[1], sys.argv[2]).decode())", path, name]
    let out = Pipe()
    p.standardOutput = out
    try p.run()
    p.waitUntilExit()
    return String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
}

/// An extended attribute's value as hex ("" when absent).
func xattrHex(_ path: String, _ name: String) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
    p.arguments = ["-c", "import os, sys\ntry: sys.stdout.write(os.getxattr(sys.argv[1], sys.argv[2]).hex())\nexcept OSError: pass", path, name]
    let out = Pipe()
    p.standardOutput = out
    try p.run()
    p.waitUntilExit()
    return String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
}

func tempDir() -> String {
    let d = NSTemporaryDirectory() + "images-test-" + UUID().uuidString
    try! FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

@Test func unpacksFilesFoldersLinksAndWhiteouts() throws {
    let dir = tempDir()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let tar = try makeTar(dir, "l.tar.gz", [
        ["name": "etc", "type": "dir"],
        ["name": "./etc/hostname", "data": "img\n"],
        ["name": "bin/tool", "data": "#!/bin/sh\n", "mode": "4755"],
        ["name": "bin/alias", "type": "hardlink", "target": "bin/tool"],
        ["name": "link", "type": "symlink", "target": "/etc/hostname"],
        ["name": "etc/.wh.gone", "type": "file"],
        ["name": "var/.wh..wh..opq", "type": "file"],
        ["name": "dev/null", "type": "chr"],
        ["name": "home/user/file", "data": "x", "uid": "1000"],
    ], gzip: true)
    let out = dir + "/snap"
    try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: false)
    let layer = Digest(of: [1])
    let warnings = try LayerUnpacker(image: "test", layer: layer).unpack(blob: tar, into: out)
    #expect(try String(contentsOfFile: out + "/etc/hostname", encoding: .utf8) == "img\n")
    var st = stat()
    #expect(stat(out + "/bin/tool", &st) == 0 && st.st_mode & 0o7777 == 0o4755 && st.st_nlink == 2)
    #expect(try FileManager.default.destinationOfSymbolicLink(atPath: out + "/link") == "/etc/hostname")
    #expect(lstat(out + "/etc/gone", &st) == 0 && (st.st_mode & S_IFMT) == S_IFCHR && st.st_rdev == 0)
    #expect(try xattr(out + "/var", "user.overlay.opaque") == "y")
    #expect(lstat(out + "/dev/null", &st) != 0)
    // 1000:1000 as protobuf Resource{uid: 1000, gid: 1000}; root-owned files carry nothing.
    #expect(try xattrHex(out + "/home/user/file", "user.rootlesscontainers") == "08e80710e807")
    #expect(try xattrHex(out + "/etc/hostname", "user.rootlesscontainers") == "")
    #expect(warnings.count == 1 && warnings[0].contains("dev/null"))
    #expect(try LayerUnpacker.diffID(ofBlob: tar, image: "t", layer: layer) != layer)
}

@Test(arguments: [
    ([["name": "../../escape", "data": "x"]], "../../escape", "leads out"),
    ([["name": "evil", "type": "symlink", "target": "/"], ["name": "evil/tmp/owned", "data": "x"]], "evil/tmp/owned", "symlink"),
    ([["name": "out", "type": "hardlink", "target": "../../sentinel/file"]], "out", "leads out"),
    ([["name": "out", "type": "hardlink", "target": "/etc/passwd"]], "out", "not a file of this layer"),
    ([["name": "a/.wh...", "data": ""]], "a/.wh...", "whiteout"),
])
func hostileEntriesFailNamingTheEntry(entries: [[String: String]], entry: String, problem: String) throws {
    let dir = tempDir()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try FileManager.default.createDirectory(atPath: dir + "/sentinel", withIntermediateDirectories: false)
    try "keep".write(toFile: dir + "/sentinel/file", atomically: false, encoding: .utf8)
    let tar = try makeTar(dir, "h.tar", entries)
    let out = dir + "/store/snap"
    try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
    let layer = Digest(of: [2])
    do {
        _ = try LayerUnpacker(image: "img:1", layer: layer).unpack(blob: tar, into: out)
        Issue.record("unpacked a hostile layer")
    } catch {
        let text = error.description
        #expect(text.contains("img:1") && text.contains(layer.description) && text.contains("\"\(entry)\"") && text.contains(problem), "\(text)")
    }
    #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/sentinel") == ["file"])
    #expect(try String(contentsOfFile: dir + "/sentinel/file", encoding: .utf8) == "keep")
    #expect(!FileManager.default.fileExists(atPath: dir + "/escape"))
}
