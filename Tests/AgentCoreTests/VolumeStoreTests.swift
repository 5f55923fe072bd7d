import Foundation
import Testing
@testable import AgentCore

@Suite struct VolumeStoreTests {
    @Test func createdOnFirstUseAndPersist() async throws {
        let t = try TempState()
        let store = VolumeStore(state: t.state)
        let a = try await store.acquire(name: "data", readOnly: false)
        #expect(a.isNew)
        try t.write("kept", a.hostPath + "/file")
        a.release()
        let b = try await store.acquire(name: "data", readOnly: true)
        #expect(!b.isNew && b.readOnly)
        #expect(try String(contentsOfFile: b.hostPath + "/file", encoding: .utf8) == "kept")
        b.release()
        #expect(store.list().map(\.name) == ["data"])
        #expect(try !store.create("data")) // exists already
    }

    @Test func removeRefusesAVolumeInUse() async throws {
        let t = try TempState()
        let store = VolumeStore(state: t.state)
        let lease = try await store.acquire(name: "db", readOnly: false)
        #expect(store.isInUse("db"))
        await #expect(throws: InUseError.self) { try await store.remove("db") }
        #expect(try await store.prune().isEmpty)
        lease.release()
        #expect(try await store.remove("db"))
        #expect(store.list().isEmpty)
    }

    @Test func invalidNamesAreRefused() async throws {
        let t = try TempState()
        let store = VolumeStore(state: t.state)
        for bad in ["", "../x", ".hidden", "a/b", "-x"] {
            #expect(throws: CacheInputError.self) { try store.create(bad) }
        }
        #expect(VolumeName.isValid("cargo-registry_1.2"))
    }

    @Test func cachesAreGCdButVolumesAreNot() async throws {
        let t = try TempState()
        try await VolumeStore(state: t.state).acquire(name: "keep", readOnly: false).release()
        // A cache with data: an empty folder takes no blocks on tmpfs, and an empty cache
        // is within any budget, so GC would rightly keep it.
        let lease = try await CacheStore(state: t.state).acquire(cache("c"), scope: "default")
        try t.write("cached", lease.hostPath + "/file")
        lease.release()
        let r = try await CacheGC.run(state: t.state, budgetBytes: 0)
        #expect(r.removed.map(\.id) == ["c"])
        #expect(VolumeStore(state: t.state).list().map(\.name) == ["keep"])
    }
}
