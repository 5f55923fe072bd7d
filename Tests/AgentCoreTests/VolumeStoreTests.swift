import Foundation
import Testing
@testable import AgentCore

@Suite struct VolumeStoreTests {
    @Test func createdOnFirstUseAndPersist() async throws {
        let t = try TempState()
        let store = VolumeStore(state: t.state)
        let a = try await store.acquire(name: "data", scope: "default", readOnly: false)
        #expect(a.isNew)
        try t.write("kept", a.hostPath + "/file")
        a.release()
        let b = try await store.acquire(name: "data", scope: "default", readOnly: true)
        #expect(!b.isNew && b.readOnly)
        #expect(try String(contentsOfFile: b.hostPath + "/file", encoding: .utf8) == "kept")
        b.release()
        #expect(try store.list().map(\.name) == ["data"])
        #expect(try !store.create("data", scope: "default")) // exists already
    }

    @Test func removeRefusesAVolumeInUse() async throws {
        let t = try TempState()
        let store = VolumeStore(state: t.state)
        let lease = try await store.acquire(name: "db", scope: "default", readOnly: false)
        #expect(store.isInUse("db", scope: "default"))
        await #expect(throws: InUseError.self) { try await store.remove("db", scope: "default") }
        #expect(try await store.prune().isEmpty)
        lease.release()
        #expect(try await store.remove("db", scope: "default"))
        #expect(try store.list().isEmpty)
    }

    @Test func invalidNamesAreRefused() async throws {
        let t = try TempState()
        let store = VolumeStore(state: t.state)
        for bad in ["", "../x", ".hidden", "a/b", "-x"] {
            #expect(throws: CacheInputError.self) { try store.create(bad, scope: "default") }
        }
        #expect(VolumeName.isValid("cargo-registry_1.2"))
        for bad in ["", "..", ".migrating-default", "a/b"] {
            #expect(throws: CacheInputError.self) { try store.create("ok", scope: bad) }
        }
    }

    /// Hostile: a fork's job (scope `forks`) names the volume a trusted job uses.
    @Test func aVolumeOfOneScopeIsInvisibleFromAnother() async throws {
        let t = try TempState()
        let store = VolumeStore(state: t.state)
        let trusted = try await store.acquire(name: "deps", scope: "default", readOnly: false)
        try t.write("trusted-content", trusted.hostPath + "/file")
        trusted.release()

        let fork = try await store.acquire(name: "deps", scope: "forks", readOnly: false)
        #expect(fork.isNew)
        #expect(fork.hostPath != trusted.hostPath)
        #expect(!FileManager.default.fileExists(atPath: fork.hostPath + "/file"))
        try t.write("planted", fork.hostPath + "/file")
        // In use in one scope says nothing about the other.
        #expect(store.isInUse("deps", scope: "forks") && !store.isInUse("deps", scope: "default"))
        fork.release()

        #expect(try String(contentsOfFile: store.dataPath("deps", scope: "default") + "/file", encoding: .utf8) == "trusted-content")
        #expect(try store.list(scope: "default").map(\.name) == ["deps"])
        #expect(try store.list().map { "\($0.scope)/\($0.name)" } == ["default/deps", "forks/deps"])
        #expect(try await store.prune(scope: "forks").map(\.scope) == ["forks"])
        #expect(try store.list().map { "\($0.scope)/\($0.name)" } == ["default/deps"])
        #expect(try !(await store.remove("deps", scope: "forks")))
    }

    /// Volumes of the layout before scopes (`volumes/<name>/`) become scope `default`,
    /// including one that is itself named `default`.
    @Test func oldLayoutVolumesMoveToScopeDefault() async throws {
        let t = try TempState()
        for name in ["old", "default"] {
            try t.write("\(name)-content", t.state.volumes + "/\(name)/data/file")
            try t.write(#"{"name":"\#(name)","created":"2026-01-01T00:00:00Z"}"#, t.state.volumes + "/\(name)/meta.json")
        }
        let store = VolumeStore(state: t.state)
        #expect(try store.list().map { "\($0.scope)/\($0.name)" } == ["default/default", "default/old"])
        let lease = try await store.acquire(name: "old", scope: "default", readOnly: true)
        #expect(!lease.isNew)
        #expect(try String(contentsOfFile: lease.hostPath + "/file", encoding: .utf8) == "old-content")
        lease.release()
        #expect(try String(contentsOfFile: store.dataPath("default", scope: "default") + "/file", encoding: .utf8) == "default-content")
        // Once migrated, a new scope folder is never taken for an old volume.
        _ = try store.create("x", scope: "forks")
        #expect(try store.list().map { "\($0.scope)/\($0.name)" } == ["default/default", "default/old", "forks/x"])
    }

    /// A crash after the marker but before the staging folder was renamed is finished later.
    @Test func anInterruptedMigrationIsFinished() throws {
        let t = try TempState()
        try t.write("kept", t.state.volumes + "/.migrating-default/v/data/file")
        try t.write("", t.state.volumes + "/.scoped")
        #expect(try VolumeStore(state: t.state).list().map { "\($0.scope)/\($0.name)" } == ["default/v"])
        #expect(!FileManager.default.fileExists(atPath: t.state.volumes + "/.migrating-default"))
    }

    @Test func cachesAreGCdButVolumesAreNot() async throws {
        let t = try TempState()
        try await VolumeStore(state: t.state).acquire(name: "keep", scope: "default", readOnly: false).release()
        // A cache with data: an empty folder takes no blocks on tmpfs, and an empty cache
        // is within any budget, so GC would rightly keep it.
        let lease = try await CacheStore(state: t.state).acquire(cache("c"), scope: "default")
        try t.write("cached", lease.hostPath + "/file")
        lease.release()
        let r = try await CacheGC.run(state: t.state, budgetBytes: 0)
        #expect(r.removed.map(\.id) == ["c"])
        #expect(try VolumeStore(state: t.state).list().map(\.name) == ["keep"])
    }
}
