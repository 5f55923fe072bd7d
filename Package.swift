// swift-tools-version: 6.0
// The agent: a rootless CI build agent. Small targets, one job each:
//   CAgentSandbox  C shim: the agent's side of a container start (clone, then exec agent-init)
//   agent-init     the container's set-up and PID 1: a small static C program (raw syscalls),
//                  installed beside `agent`, which execs it in every new container
//   CAgentSys      wrappers for the agent process: renameat2, prctl (Glibc lacks them)
//   AgentSupport   text, path and thread helpers (the agent links FoundationEssentials only)
//   SandboxPolicy  seccomp profiles (Docker JSON -> BPF via libseccomp), capabilities, sandbox limits
//   Sandbox        container configuration and the async run API (Swift side of the shim)
//   Images         container images: references, registry client, content store, unpack
//   Dockerfile     the Dockerfile frontend: parser, BuildKit's variable expansion, stage graph,
//                  .dockerignore (pure Swift, no I/O)
//   AgentCore      the agent policy, admission, jobs, mounts, caches, secrets, reports (JUnit read
//                  with libxml2), artifacts, queue, and image builds (Build/: agent build's executor)
//   agent          the thin CLI
import PackageDescription

// libxml2 keeps its headers under /usr/include/libxml2 (Debian's libxml2-dev). The path is
// given by hand because the CXML2 module no longer asks pkg-config, whose `--libs` would
// link the library that CLazyLibs loads on first use instead.
let libxml2Include = ["-I/usr/include/libxml2"]
let libxml2ImportFlags = ["-Xcc", "-I/usr/include/libxml2"]

let package = Package(
    name: "agent",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "agent", targets: ["agent"]),
        .executable(name: "agent-init", targets: ["agent-init"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
    ],
    targets: [
        // Headers only: SandboxPolicy links libseccomp (see there).
        .systemLibrary(name: "CSeccomp", providers: [.apt(["libseccomp-dev"])]),
        // libcap for the tests only (they check SandboxPolicy's capability table against it).
        .systemLibrary(name: "CCap", pkgConfig: "libcap", providers: [.apt(["libcap-dev"])]),
        // Headers only: libarchive and libxml2 are loaded on first use by CLazyLibs, not linked.
        .systemLibrary(name: "CArchive", providers: [.apt(["libarchive-dev"])]),
        .systemLibrary(name: "CXML2", providers: [.apt(["libxml2-dev"])]),
        .target(name: "CLazyLibs", cSettings: [.unsafeFlags(libxml2Include)], linkerSettings: [.linkedLibrary("dl")]),
        .target(name: "CAgentSandbox"),
        // The container's init, found beside the agent's binary: static and without any libc
        // (raw system calls; agent-init/start.c is its runtime), a few dozen KiB in all.
        .executableTarget(
            name: "agent-init",
            cSettings: [.define("SB_NOLIBC"), .unsafeFlags(["-ffreestanding", "-fno-stack-protector", "-fno-pie"])],
            linkerSettings: [.unsafeFlags(["-static-executable", "-Xclang-linker", "-nostdlib"])]
        ),
        // renameat2 and prctl wrappers for the agent process itself (not the child).
        .target(name: "CAgentSys"),
        // Text, path and thread helpers every module shares (FoundationEssentials lacks them).
        .target(name: "AgentSupport"),
        // The release agent carries libseccomp (Debian's libseccomp.a): no library for the
        // dynamic loader to map at each start, and the version in the seccomp cache key
        // (SeccompHost) is the one that compiles, by construction. Debug builds link libseccomp.so.
        .target(
            name: "SandboxPolicy",
            dependencies: ["AgentSupport", "CSeccomp", "CAgentSys"],
            linkerSettings: [.linkedLibrary("seccomp", .when(configuration: .debug)),
                             .unsafeFlags(["-l:libseccomp.a"], .when(configuration: .release))]
        ),
        .target(name: "Sandbox", dependencies: ["AgentSupport", "CAgentSandbox", "SandboxPolicy"]),
        // libcurl (registry HTTP) is loaded on first use through CLazyLibs, like libarchive.
        .target(
            name: "Images",
            dependencies: ["AgentSupport", "CArchive", "CLazyLibs", "CAgentSandbox", "Sandbox",
                           .product(name: "Crypto", package: "swift-crypto")]
        ),
        .target(name: "Dockerfile", dependencies: ["AgentSupport"]),
        .target(
            name: "AgentCore",
            dependencies: [
                "AgentSupport", "Sandbox", "SandboxPolicy", "Images", "Dockerfile", "CArchive", "CXML2", "CLazyLibs", "CAgentSandbox", "CAgentSys",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.unsafeFlags(libxml2ImportFlags)]
        ),
        .executableTarget(
            name: "agent",
            dependencies: [
                "AgentCore", "AgentSupport", "Sandbox", "SandboxPolicy", "Images", "CAgentSys",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // The release binary carries the Swift runtime (no libswiftCore.so & co. to find
            // and relocate at every start: the fast build is the default one). Debug builds
            // stay dynamic, which links faster. Unlike `swift build --static-swift-stdlib`, the
            // flag alone does not bring the static FoundationEssentials' own archives, which
            // the toolchain's static-stdlib-args.lnk does not list: they are named here.
            // The C++ runtime is static too (link/libstdc++.so, a linker script, turns every
            // -lstdc++ into libstdc++.a; -static-libgcc takes libgcc_eh.a for libgcc_s.so), and
            // the binary exports no symbols (the toolchain's .lnk asks for -export-dynamic, which
            // put 13,000 of the agent's own symbols in .dynsym for nothing to look up): `ldd`
            // shows libc and libm only, and the loader's start-up work halves. Linked by lld
            // (the toolchain's; gold has no RELR) with its ~52,000 relative relocations packed
            // as RELR (glibc 2.36+): 10 KB for the loader to read instead of 1.25 MB of RELA,
            // which took 0.3 ms off every start (exec to __libc_start_main, 1.90 -> 1.58 ms).
            linkerSettings: [.unsafeFlags(["-static-stdlib", "-l_FoundationCollections", "-l_FoundationCShims",
                                           "-L", Context.packageDirectory + "/link",
                                           "-Xclang-linker", "-static-libgcc",
                                           "-Xlinker", "--no-export-dynamic",
                                           "-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"],
                                          .when(configuration: .release))]
        ),
        .testTarget(name: "AgentSupportTests", dependencies: ["AgentSupport"]),
        .testTarget(name: "SandboxPolicyTests", dependencies: ["SandboxPolicy", "AgentCore", "CCap"]),
        .testTarget(name: "AgentCoreTests", dependencies: ["AgentCore", "AgentSupport", "SandboxPolicy"],
                    swiftSettings: [.unsafeFlags(libxml2ImportFlags)]),
        .testTarget(name: "SandboxTests", dependencies: ["Sandbox", "SandboxPolicy"]),
        .testTarget(name: "ImagesTests", dependencies: ["Images", "AgentSupport"]),
        .testTarget(name: "DockerfileTests", dependencies: ["Dockerfile"]),
        // Runs the built `agent` binary as an unprivileged user (see ci/test.sh).
        .testTarget(name: "IntegrationTests", dependencies: []),
    ]
)

// Start-up: release code of the agent's own modules reaches the metadata of the generic types
// it uses through direct accessor calls, not mangled names that the Swift runtime demangles at
// first use (checking each generic requirement by a scan of every protocol conformance in the
// binary). A few hundred bytes of code for about 0.1 ms of CPU per `agent exec`.
for target in package.targets where ["AgentSupport", "SandboxPolicy", "Sandbox", "Images", "Dockerfile", "AgentCore", "agent"].contains(target.name) {
    target.swiftSettings = (target.swiftSettings ?? []) + [
        .unsafeFlags(["-Xfrontend", "-disable-concrete-type-metadata-mangled-name-accessors"], .when(configuration: .release)),
    ]
}
