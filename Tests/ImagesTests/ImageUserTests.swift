import Foundation
import Testing
@testable import Images

/// `ImageUser` reads names from the snapshots (top first), never the host's /etc/passwd.
struct ImageUserUnitTests {
    let dir: String
    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("image-user-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    func layer(_ name: String, _ files: [String: String]) throws -> String {
        let root = dir + "/" + name
        try FileManager.default.createDirectory(atPath: root + "/etc", withIntermediateDirectories: true)
        for (path, text) in files { try Data(text.utf8).write(to: URL(fileURLWithPath: root + "/" + path)) }
        return root
    }

    @Test func numericFormsNeedNoFiles() throws {
        #expect(try ImageUser.resolve("1234:2345", layers: [], image: "i") == (1234, 2345))
        #expect(try ImageUser.resolve("1234", layers: [], image: "i") == (1234, 0))
        #expect(throws: ImageUser.Failure.self) { try ImageUser.resolve("4294967295", layers: [], image: "i") }
        #expect(throws: ImageUser.Failure.self) { try ImageUser.resolve(":5", layers: [], image: "i") }
    }

    @Test func namesComeFromTheTopmostLayerThatHasTheFile() throws {
        let lower = try layer("lower", ["etc/passwd": "builder:x:1:1::/:/bin/sh\n", "etc/group": "staff:x:9:\n"])
        let upper = try layer("upper", ["etc/passwd": "# comment\nbuilder:x:1500:1600::/:/bin/sh\n"])
        #expect(try ImageUser.resolve("builder", layers: [upper, lower], image: "i") == (1500, 1600))
        #expect(try ImageUser.resolve("builder:staff", layers: [upper, lower], image: "i") == (1500, 9))
        // A lone uid takes its primary group from passwd.
        #expect(try ImageUser.resolve("1500", layers: [upper, lower], image: "i") == (1500, 1600))
        let e = #expect(throws: ImageUser.Failure.self) { try ImageUser.resolve("root", layers: [upper, lower], image: "reg/x:1") }
        #expect(e?.description == "image reg/x:1: User \"root\": no such user in the image's /etc/passwd")
    }

    @Test func aSymlinkResolvesInsideTheSnapshotNotOnTheHost() throws {
        let l = try layer("link", [:])
        // On the host /etc/passwd has root; inside this snapshot the link leads nowhere.
        try FileManager.default.createSymbolicLink(atPath: l + "/etc/passwd", withDestinationPath: "/etc/passwd")
        #expect(throws: ImageUser.Failure.self) { try ImageUser.resolve("root", layers: [l], image: "i") }
        try FileManager.default.createSymbolicLink(atPath: l + "/etc/group", withDestinationPath: "../../../../etc/group")
        #expect(throws: ImageUser.Failure.self) { try ImageUser.resolve("0:root", layers: [l], image: "i") }
    }
}
