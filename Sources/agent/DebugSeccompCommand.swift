import ArgumentParser
import AgentSupport
import FoundationEssentials
import Glibc
import SandboxPolicy

/// `agent debug seccomp PROFILE|default [--cap NAME ...]`: compiles a seccomp profile and
/// prints its size and how long a cold compile and a cache hit take. Used by
/// `ci/bench/seccomp-compile.sh`; hidden from help.
struct DebugSeccompCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seccomp",
        abstract: "Compile a seccomp profile and time a cold compile against a cache hit."
    )

    @Argument(help: "A Docker-format profile file, or `default` for the built-in profile.")
    var profile: String

    @Option(name: .customLong("cap"), help: "A capability the container keeps (repeatable, comma-separated, ALL). Default: Docker's 14.")
    var capabilities: [String] = []

    @Option(help: "How many cold compiles and cache hits to time (medians are printed).")
    var iterations: Int = 5

    @Option(help: "Also time a hit of an on-disk cache in this directory.")
    var cacheDir: String?

    @Option(help: "Write the compiled program (raw struct sock_filter[]) to this file.")
    var output: String?

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func run() async throws {
        do {
            try measure()
        } catch let error as ExitCode {
            throw error
        } catch {
            printToStandardError("agent: \(error)\n")
            throw ExitCode(125)
        }
    }

    private func measure() throws {
        guard iterations >= 1 else { throw ValidationError("--iterations must be at least 1") }
        let policy: SeccompPolicy = profile == "default" ? .projectDefault : try .file(profile)
        let names = capabilities.flatMap { $0.split(separator: ",").map(String.init) }
        let caps = names.isEmpty ? CapabilitySet.dockerDefault : try CapabilitySet(names: names)

        let clock = ContinuousClock()
        var program: SeccompProgram?
        var cold: [Duration] = []
        for _ in 0..<iterations {
            let fresh = SeccompCache()
            cold.append(try clock.measure { program = try policy.program(capabilities: caps, cache: fresh) })
        }
        let warm = SeccompCache()
        _ = try policy.program(capabilities: caps, cache: warm)
        var cached: [Duration] = []
        for _ in 0..<iterations {
            cached.append(try clock.measure { _ = try policy.program(capabilities: caps, cache: warm) })
        }
        var disk: [Duration] = []
        if let cacheDir {
            _ = try policy.program(capabilities: caps, cacheDirectory: cacheDir, cache: SeccompCache())
            for _ in 0..<iterations {
                let fresh = SeccompCache()
                disk.append(try clock.measure { _ = try policy.program(capabilities: caps, cacheDirectory: cacheDir, cache: fresh) })
                guard fresh.statistics.diskHits == 1 else { throw SeccompError(message: "the disk cache in \(cacheDir) did not hit") }
            }
        }
        guard let program else { throw SeccompError(message: "no program (unconfined)") }
        if let output {
            guard FileManager.default.createFile(atPath: output, contents: Data(program.bytes)) else {
                throw SeccompError(message: "cannot write \(output)")
            }
        }

        let coldMs = Self.median(cold) * 1e3, cachedUs = Self.median(cached) * 1e6
        let diskUs = disk.isEmpty ? nil : Self.median(disk) * 1e6
        let ratio = coldMs * 1e3 / max(cachedUs, 0.001)
        if json {
            var fields = [
                "\"profile\":\"\(profile)\"", "\"instructions\":\(program.instructionCount)",
                "\"architectures\":\"\(program.architectures.joined(separator: ","))\"",
                "\"skippedNames\":\(program.skippedNames.count)", "\"capabilities\":\"\(String(caps.mask, radix: 16))\"",
                "\"coldMs\":\(Self.fmt(coldMs))", "\"cachedUs\":\(Self.fmt(cachedUs))", "\"coldOverCached\":\(Self.fmt(ratio))",
            ]
            if let diskUs { fields.append("\"diskUs\":\(Self.fmt(diskUs))") }
            print("{" + fields.joined(separator: ",") + "}")
        } else {
            print("profile:        \(profile)")
            print("capabilities:   \(caps)")
            print("architectures:  \(program.architectures.joined(separator: ", "))")
            print("instructions:   \(program.instructionCount)")
            print("skipped names:  \(program.skippedNames.count)\(program.skippedNames.isEmpty ? "" : " (\(program.skippedNames.joined(separator: ", ")))")")
            print("cold compile:   \(Self.fmt(coldMs)) ms (median of \(iterations))")
            print("cache hit:      \(Self.fmt(cachedUs)) us (median of \(iterations))")
            if let diskUs { print("disk cache hit: \(Self.fmt(diskUs)) us (median of \(iterations))") }
            print("cold/cached:    \(Self.fmt(ratio))x")
        }
    }

    /// Median in seconds.
    private static func median(_ samples: [Duration]) -> Double {
        let seconds = samples.map { Double($0.components.seconds) + Double($0.components.attoseconds) * 1e-18 }.sorted()
        let mid = seconds.count / 2
        return seconds.count % 2 == 1 ? seconds[mid] : (seconds[mid - 1] + seconds[mid]) / 2
    }

    private static func fmt(_ value: Double) -> String { fixedPoint(value, decimals: 3) }
}
