import Foundation
import Testing
@testable import SandboxPolicy

/// The compile cache: counted hits, not timings.
@Suite struct SeccompCacheTests {
    @Test func secondCompileIsAMemoryHitWithIdenticalBytes() throws {
        let cache = SeccompCache()
        let text = try TestFiles.dockerProfile()
        let first = try cache.program(profileText: text, capabilities: .dockerDefault)
        let second = try cache.program(profileText: text, capabilities: .dockerDefault)
        #expect(first == second)
        #expect(cache.statistics.compiles == 1)
        #expect(cache.statistics.memoryHits == 1)
        // A different capability set or profile text is a different entry.
        _ = try cache.program(profileText: text, capabilities: .empty)
        _ = try cache.program(profileText: text + " ", capabilities: .dockerDefault)
        #expect(cache.statistics.compiles == 3)
    }

    @Test func compilingIsDeterministic() throws {
        let a = try SeccompCache().program(profileText: DefaultProfile.text, capabilities: .dockerDefault)
        let b = try SeccompCache().program(profileText: DefaultProfile.text, capabilities: .dockerDefault)
        #expect(a == b)
    }

    @Test func concurrentCompilesAgree() async throws {
        let cache = SeccompCache()
        let results = try await withThrowingTaskGroup(of: [UInt8].self) { group in
            for _ in 0..<8 {
                group.addTask { try cache.program(profileText: DefaultProfile.text, capabilities: .dockerDefault).bytes }
            }
            return try await group.reduce(into: [[UInt8]]()) { $0.append($1) }
        }
        #expect(Set(results).count == 1)
        let stats = cache.statistics
        #expect(stats.compiles + stats.memoryHits == 8)
        #expect(stats.compiles >= 1)
    }

    @Test func diskCacheRoundTrip() throws {
        let dir = try TestFiles.scratch("disk") + "/cache"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let writer = SeccompCache()
        let compiled = try writer.program(profileText: DefaultProfile.text, capabilities: .dockerDefault, cacheDirectory: dir)
        #expect(writer.statistics.diskWrites == 1)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir)
        let key = writer.cacheKey(profileText: DefaultProfile.text, capabilities: .dockerDefault)
        #expect(files == ["\(key).bpf"])
        #expect(key.count == 16)
        var info = stat()
        #expect(stat(dir, &info) == 0 && info.st_mode & 0o777 == 0o700)

        let reader = SeccompCache()
        let loaded = try reader.program(profileText: DefaultProfile.text, capabilities: .dockerDefault, cacheDirectory: dir)
        #expect(loaded == compiled)
        #expect(reader.statistics.diskHits == 1)
        #expect(reader.statistics.compiles == 0)
        // Then it is in memory.
        _ = try reader.program(profileText: DefaultProfile.text, capabilities: .dockerDefault, cacheDirectory: dir)
        #expect(reader.statistics.memoryHits == 1)
        #expect(try SeccompPolicy.projectDefault.compile(capabilities: .dockerDefault, cacheDirectory: dir) == compiled.bytes)
    }

    @Test(arguments: ["garbage", "truncated", "flipped", "empty"])
    func corruptCacheFileIsIgnoredAndRewritten(damage: String) throws {
        let dir = try TestFiles.scratch("corrupt")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let writer = SeccompCache()
        let compiled = try writer.program(profileText: DefaultProfile.text, capabilities: .dockerDefault, cacheDirectory: dir)
        let file = dir + "/" + writer.cacheKey(profileText: DefaultProfile.text, capabilities: .dockerDefault) + ".bpf"
        var contents = try Data(contentsOf: URL(fileURLWithPath: file))
        switch damage {
        case "garbage": contents = Data("not a cache file".utf8)
        case "truncated": contents = contents.prefix(contents.count - 8)
        case "flipped": contents[contents.count - 3] ^= 0xff
        default: contents = Data()
        }
        try contents.write(to: URL(fileURLWithPath: file))

        let reader = SeccompCache()
        let recovered = try reader.program(profileText: DefaultProfile.text, capabilities: .dockerDefault, cacheDirectory: dir)
        #expect(recovered.bytes == compiled.bytes)
        #expect(reader.statistics.diskRejected == 1)
        #expect(reader.statistics.compiles == 1)
        #expect(reader.statistics.diskWrites == 1)

        let third = SeccompCache()
        _ = try third.program(profileText: DefaultProfile.text, capabilities: .dockerDefault, cacheDirectory: dir)
        #expect(third.statistics.diskHits == 1)
        // No temporary files are left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).count == 1)
    }

    @Test func cacheFileOthersCanWriteIsNotTrusted() throws {
        let dir = try TestFiles.scratch("perm")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let writer = SeccompCache()
        _ = try writer.program(profileText: DefaultProfile.text, capabilities: .dockerDefault, cacheDirectory: dir)
        let file = dir + "/" + writer.cacheKey(profileText: DefaultProfile.text, capabilities: .dockerDefault) + ".bpf"
        #expect(chmod(file, 0o666) == 0)
        let reader = SeccompCache()
        _ = try reader.program(profileText: DefaultProfile.text, capabilities: .dockerDefault, cacheDirectory: dir)
        #expect(reader.statistics.diskRejected == 1)
        var info = stat()
        #expect(stat(file, &info) == 0 && info.st_mode & 0o777 == 0o600)
    }

    @Test func defaultDirectoryFollowsXDG() {
        #expect(SeccompCache.defaultDirectory(environment: ["XDG_CACHE_HOME": "/x", "HOME": "/h"]) == "/x/agent/seccomp")
        #expect(SeccompCache.defaultDirectory(environment: ["HOME": "/h"]) == "/h/.cache/agent/seccomp")
        #expect(SeccompCache.defaultDirectory(environment: [:]) == nil)
    }

    @Test func defaultDirectoryOfThisProcess() {
        #expect(SeccompCache.defaultDirectory() == SeccompCache.defaultDirectory(environment: ProcessInfo.processInfo.environment))
    }

    /// `load` rejects a file whose fields do not describe the program that follows, or
    /// whose identity (host, capabilities, profile text) is not the caller's byte for byte.
    @Test(arguments: [
        "asWritten", "otherProfile", "otherHost", "shortIdentity", "wrongLength", "wrongChecksum",
        "emptyName", "trailingBytes", "oldFormat",
    ])
    func fileVariants(variant: String) throws {
        let host = SeccompHost.current
        let compiled = try SeccompCache().program(profileText: DefaultProfile.text, capabilities: .dockerDefault)
        let cache = SeccompCache(host: host)
        let identity = cache.identity(profileText: DefaultProfile.text, capabilities: .dockerDefault)
        var data = try #require(SeccompDiskCache.encode(compiled, identity: identity))
        var expected = identity
        func replace(_ old: String, _ new: String) {
            let o = Array(old.utf8)
            let i = (0...(data.count - o.count)).first { data[$0..<$0 + o.count].elementsEqual(o) }!
            data.replaceSubrange(i..<i + o.count, with: Array(new.utf8))
        }
        let n = compiled.bytes.count, sum = SeccompDiskCache.hex16(SeccompDiskCache.checksum64(compiled.bytes))
        switch variant {
        case "otherProfile": expected = cache.identity(profileText: DefaultProfile.text + " ", capabilities: .dockerDefault)
        case "otherHost":
            var other = host
            other.kernelRelease += "x"
            expected = SeccompCache(host: other).identity(profileText: DefaultProfile.text, capabilities: .dockerDefault)
        case "shortIdentity": replace("identity \(identity.count)\n", "identity \(identity.count - 1)\n")
        case "wrongLength": replace("program \(n) ", "program \(n - 8) ")
        case "wrongChecksum": replace(" \(sum)\n", " \(String(repeating: "0", count: 16))\n")
        case "emptyName": replace("architectures ", "architectures ,")
        case "trailingBytes": data += [0, 0, 0, 0, 0, 0, 0, 0]
        case "oldFormat": replace("agent-seccomp-bpf 2\n", "agent-seccomp-bpf 1\n")
        default: break
        }
        let parsed = SeccompDiskCache.parse(data, identity: expected)
        #expect((parsed == compiled) == (variant == "asWritten"), "\(variant)")
        if variant != "asWritten" { #expect(parsed == nil, "\(variant)") }
    }

    /// A program whose names cannot be written unambiguously is not stored (it is compiled
    /// again next time), rather than written in a form that reads back differently.
    @Test func namesWithSeparatorsAreNotStored() {
        let p = SeccompProgram(bytes: [UInt8](repeating: 0, count: 8), architectures: ["x86_64"], skippedNames: ["a,b"])
        #expect(SeccompDiskCache.encode(p, identity: []) == nil)
        let q = SeccompProgram(bytes: [UInt8](repeating: 0, count: 8), architectures: ["x86_64"], skippedNames: [])
        #expect(SeccompDiskCache.parse(SeccompDiskCache.encode(q, identity: [1, 2])!, identity: [1, 2]) == q)
    }

    @Test func cacheKeyCoversHostAndCapabilities() {
        let host = SeccompHost(architecture: "x86_64", kernelRelease: "6.1.0", libseccompVersion: "2.5.4")
        let base = SeccompCache(host: host).cacheKey(profileText: "{}", capabilities: .empty)
        #expect(base != SeccompCache(host: host).cacheKey(profileText: "{}", capabilities: .dockerDefault))
        #expect(base != SeccompCache(host: host).cacheKey(profileText: "{} ", capabilities: .empty))
        var other = host
        other.architecture = "aarch64"
        #expect(base != SeccompCache(host: other).cacheKey(profileText: "{}", capabilities: .empty))
        other = host
        other.kernelRelease = "6.2.0"
        #expect(base != SeccompCache(host: other).cacheKey(profileText: "{}", capabilities: .empty))
        other = host
        other.libseccompVersion = "2.6.0"
        #expect(base != SeccompCache(host: other).cacheKey(profileText: "{}", capabilities: .empty))
    }

    @Test func unwritableCacheDirectoryStillCompiles() throws {
        let cache = SeccompCache()
        let program = try cache.program(profileText: DefaultProfile.text, capabilities: .dockerDefault,
                                        cacheDirectory: "/proc/no-such-cache-dir")
        #expect(program.instructionCount > 0)
        #expect(cache.statistics.diskWrites == 0)
    }
}
