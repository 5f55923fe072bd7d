import Foundation
import Sandbox
import Testing
@testable import Images

/// What the unpacker records for subordinate mode (`LayerOwners`), before anything is
/// applied: the list names only what the snapshot holds, owners outside the ranges are
/// warned about and kept in the xattr. (Applying them needs the test user's subordinate
/// ranges: Tests/IntegrationTests/ImageOwnersTests.swift.)
@Suite struct LayerOwnersTests {
    let ranges = OwnerRanges(uids: SubordinateRange(start: 100000, count: 65536), gids: SubordinateRange(start: 200000, count: 1000))

    @Test func theListHoldsWhatTheSnapshotHoldsAndFarOwnersAreWarnedAbout() throws {
        let dir = tempDir()
        let tar = try makeTar(dir, "l.tar", [
            ["name": "a", "type": "dir", "uid": "1500", "gid": "600"],
            ["name": "a/f", "data": "1", "uid": "1500", "gid": "600"],
            ["name": "a/f", "data": "2", "uid": "0"],          // replaced by a root-owned file
            ["name": "b", "data": "b", "uid": "900", "gid": "600"],
            ["name": ".wh.b"],                                   // removed by the same layer
            ["name": "c", "type": "dir", "uid": "900", "gid": "600"],
            ["name": "c/x", "data": "x", "uid": "900", "gid": "600"],
            ["name": "c", "data": "now a file", "uid": "901", "gid": "600"],   // the folder and c/x are gone
            ["name": "far", "data": "far", "uid": "70000"],      // outside both ranges
            ["name": "gid-far", "data": "g", "uid": "1001", "gid": "1001"],     // the uid fits, the gid (1001 > 1000) not
            ["name": "l", "type": "symlink", "target": "a/f", "uid": "1500", "gid": "600"],
            ["name": "h", "type": "hardlink", "target": "a/f", "uid": "1500", "gid": "600"],  // shares a/f's inode
        ])
        let out = dir + "/out"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: false)
        let unpacker = LayerUnpacker(image: "img:1", layer: Digest(of: [7]), owners: ranges)
        _ = try unpacker.unpack(blob: tar, into: out)
        let owners = try #require(unpacker.owners)
        #expect(owners.list().paths == ["a", "c", "l"])
        #expect(owners.warnings.count == 2, "\(owners.warnings)")
        #expect(owners.warnings.first?.contains("\"far\" is owned by 70000:70000, outside the agent's subordinate ids (65536 uids, 1000 gids") == true,
                "\(owners.warnings)")
        // Applied owners get no xattr; the ones that cannot be applied keep it (umoci's protobuf).
        #expect(try xattrHex(out + "/a", "user.rootlesscontainers") == "")
        #expect(try xattrHex(out + "/far", "user.rootlesscontainers") == "08f0a20410f0a204")
        #expect(try xattrHex(out + "/gid-far", "user.rootlesscontainers") == "08e90710e907")
    }

    @Test func theRangesKeyRoundTripsAndTheArithmeticIsTheSteps() throws {
        #expect(ranges.key == "u100000+65536g200000+1000")
        #expect(OwnerRanges(key: ranges.key) == ranges)
        #expect(OwnerRanges(key: "u1+0g1+1") == nil && OwnerRanges(key: "garbage") == nil)
        // Container id k (1...count) is host id start + k - 1; 0 is the agent's own.
        #expect(ranges.hostUID(1500) == 101499 && ranges.hostGID(1000) == 200999)
        #expect(ranges.mapsUID(65536) && !ranges.mapsUID(65537) && ranges.mapsGID(1000) && !ranges.mapsGID(1001))
    }

    @Test func theRecordsAreWhatTheOwnersProcessReads() {
        var l = SubordinateOwners.List()
        l.append(path: Array("ab/c".utf8), uid: 1500, gid: 1600, mode: 0o4755, symlink: false, capability: [1, 2, 3])
        // 24 bytes of header, 4 of path, 3 of capability, padded to 32.
        #expect(l.bytes.count == 32 && l.count == 1)
        #expect(Array(l.bytes[0..<4]) == [32, 0, 0, 0] && Array(l.bytes[4..<8]) == [0xdc, 0x05, 0, 0])
        #expect(Array(l.bytes[24..<31]) == [0x61, 0x62, 0x2f, 0x63, 1, 2, 3])
    }
}
