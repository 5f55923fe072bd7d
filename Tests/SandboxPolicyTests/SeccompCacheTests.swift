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
        #expect(key.count == 64)
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

    /// `load` accepts any well-formed metadata line (key order, spacing, escapes, extra keys)
    /// and rejects one that does not describe the program that follows.
    @Test(arguments: [
        ("reordered", true), ("spaced", true), ("escaped", true), ("extraKey", true),
        ("wrongLength", false), ("wrongDigest", false), ("notJSON", false), ("missingKey", false),
    ])
    func metadataLineVariants(variant: String, loads: Bool) throws {
        let dir = try TestFiles.scratch("meta")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let writer = SeccompCache()
        let compiled = try writer.program(profileText: DefaultProfile.text, capabilities: .dockerDefault, cacheDirectory: dir)
        let file = dir + "/" + writer.cacheKey(profileText: DefaultProfile.text, capabilities: .dockerDefault) + ".bpf"
        let contents = try Data(contentsOf: URL(fileURLWithPath: file))
        let magic = Data("agent-seccomp-bpf 1\n".utf8)
        let newline = try #require(contents[magic.count...].firstIndex(of: UInt8(ascii: "\n")))
        let digest = String(decoding: contents[magic.count..<newline], as: UTF8.self)
            .split(separator: "\"sha256\":\"")[1].prefix(64)
        let archs = compiled.architectures.map { "\"\($0)\"" }.joined(separator: ",")
        let skipped = compiled.skippedNames.map { "\"\($0)\"" }.joined(separator: ",")
        let n = compiled.bytes.count
        let line: String
        switch variant {
        case "reordered": line = #"{"length":\#(n),"skippedNames":[\#(skipped)],"sha256":"\#(digest)","architectures":[\#(archs)]}"#
        case "spaced": line = "{ \"sha256\" : \"\(digest)\" ,\t\"length\": \(n), \"architectures\": [ \(archs) ], \"skippedNames\": [ \(skipped) ] }\r"
        case "escaped": line = #"{"sha\u0032\u00356":"\#(digest)","length":\#(n),"architectures":[\#(archs)],"skippedNames":[\#(skipped)],"x":"a\/b"}"#
        case "extraKey": line = #"{"sha256":"\#(digest)","length":\#(n),"architectures":[\#(archs)],"skippedNames":[\#(skipped)],"note":[1,{"a":null}]}"#
        case "wrongLength": line = #"{"sha256":"\#(digest)","length":\#(n - 8),"architectures":[\#(archs)],"skippedNames":[\#(skipped)]}"#
        case "wrongDigest": line = #"{"sha256":"\#(String(repeating: "0", count: 64))","length":\#(n),"architectures":[\#(archs)],"skippedNames":[\#(skipped)]}"#
        case "notJSON": line = #"{"sha256":"\#(digest)","length":\#(n),"architectures":[\#(archs)],"skippedNames":[\#(skipped)]"#
        default: line = #"{"sha256":"\#(digest)","length":\#(n),"architectures":[\#(archs)]}"#
        }
        var rewritten = magic
        rewritten.append(Data(line.utf8))
        rewritten.append(contents[newline...])
        try rewritten.write(to: URL(fileURLWithPath: file))

        let reader = SeccompCache()
        let loaded = try reader.program(profileText: DefaultProfile.text, capabilities: .dockerDefault, cacheDirectory: dir)
        #expect(loaded == compiled)
        #expect(reader.statistics.diskHits == (loads ? 1 : 0))
        #expect(reader.statistics.diskRejected == (loads ? 0 : 1))
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
