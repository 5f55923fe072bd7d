import Foundation
import Testing
@testable import Images

/// `ContentLease`: what a live lease lists survives `prune`; the file of a dead owner (its
/// lock free) is removed by the next prune; a released lease leaves nothing.
@Suite struct ContentLeaseTests {
    @Test func aLiveLeaseKeepsItsBlobAndADeadOnesFileGoes() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try ImageStore(stateDirectory: dir)
        let kept = try store.content.put(Array("a layer a build wrote\n".utf8))
        let loose = try store.content.put(Array("nobody needs this\n".utf8))
        let lease = try store.contentLease()
        try lease.add(blob: kept)
        // A lease file whose owner is gone: nobody holds its lock.
        let dead = store.content.root + "/locks/lease-dead"
        FileManager.default.createFile(atPath: dead, contents: Data("blob \(loose.hex)\n".utf8))
        let p = try store.prune()
        #expect(store.content.has(kept))
        #expect(!store.content.has(loose), "a dead lease kept its blob")
        #expect(!FileManager.default.fileExists(atPath: dead))
        #expect(p.blobs == 1)
        lease.release()
        lease.release()
        #expect(!FileManager.default.fileExists(atPath: lease.path))
        _ = try store.prune()
        #expect(!store.content.has(kept), "a released lease still kept its blob")
    }

    @Test func listedSnapshotsAreCountedInUse() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try ImageStore(stateDirectory: dir)
        let snap = store.content.root + "/snapshots/sha256/" + String(repeating: "b", count: 64)
        try FileManager.default.createDirectory(atPath: snap, withIntermediateDirectories: true)
        let lease = try store.contentLease()
        try lease.add(snapshots: [snap])
        let p = try store.prune()
        #expect(FileManager.default.fileExists(atPath: snap) && p.inUse == 1 && p.snapshots == 0)
        lease.release()
        let q = try store.prune()
        #expect(!FileManager.default.fileExists(atPath: snap) && q.snapshots == 1)
    }
}
