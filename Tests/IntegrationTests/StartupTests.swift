import Foundation
import Testing

/// Every `agent exec`/`run-job` is a new process, so what the binary loads at start is part
/// of its speed (README, Development). libarchive, libxml2 and libcurl (and their ten dependencies)
/// must stay lazily loaded: a direct call that bypasses the CLazyLibs trampolines would make
/// the linker record them as needed again, silently.
@Test func binaryDoesNotLinkTheLazilyLoadedLibraries() throws {
    let readelf = Process()
    readelf.executableURL = URL(fileURLWithPath: "/usr/bin/readelf")
    readelf.arguments = ["--dynamic", Harness.agentBinary]
    let out = Pipe()
    readelf.standardOutput = out
    try readelf.run()
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    readelf.waitUntilExit()
    let needed = text.split(separator: "\n").filter { $0.contains("(NEEDED)") }
    #expect(needed.contains { $0.contains("[libc.so.6]") }, "readelf output unexpected: \(text)")
    #expect(!needed.contains { $0.contains("libarchive") || $0.contains("libxml2") || $0.contains("libicu") || $0.contains("libcurl") },
            "linked at start: \(needed.joined(separator: "; "))")
    // Capability names are a table in SandboxPolicy: no build of the agent needs libcap.
    #expect(!needed.contains { $0.contains("libcap") }, "linked at start: \(needed.joined(separator: "; "))")
    // The release binary (static Swift runtime: no libswiftCore.so) carries the C++ runtime
    // and libseccomp too, and the loader maps libc and libm only (README, Development).
    if !needed.contains(where: { $0.contains("libswiftCore") }) {
        let names = needed.compactMap { line -> String? in
            guard let open = line.firstIndex(of: "["), let close = line.lastIndex(of: "]") else { return nil }
            return String(line[line.index(after: open)..<close])
        }
        #expect(Set(names) == ["libc.so.6", "libm.so.6", "ld-linux-x86-64.so.2"] || Set(names) == ["libc.so.6", "libm.so.6"],
                "release agent needs \(names)")
    }
}
