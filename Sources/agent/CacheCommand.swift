import AgentCore
import ArgumentParser
import AgentSupport
import FoundationEssentials
import Glibc
import SandboxPolicy

/// `agent cache`: list, prune, export and import the persistent caches of step mounts.
/// Exit codes: 0 ok, 1 refused (a cache in use), 2 usage or invalid input, 3 other failures.
struct CacheCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache",
        abstract: "Manage persistent cache mounts (ls, prune, rm, export, import).",
        discussion: "Exit codes: 0 ok, 1 refused because a cache is in use, 2 usage or invalid input, 3 other failure.",
        subcommands: [CacheList.self, CachePrune.self, CacheRemove.self, CacheExport.self, CacheImport.self, CacheHold.self]
    )
}

/// `--state-dir`, shared by `agent cache` and `agent volume`.
struct StateDirOption: ParsableArguments {
    @Option(name: .customLong("state-dir"), help: "The agent's state folder (default $XDG_STATE_HOME/agent, else ~/.local/state/agent).")
    var stateDir: String?

    /// A state folder that cannot be used is bad input (exit 2), naming the folder.
    func open() throws -> StateDirectory {
        do {
            return try StateDirectory.open(explicit: stateDir)
        } catch let e as StateError {
            throw CacheInputError("--state-dir: \(e)")
        }
    }
}

/// Runs a store operation and maps its errors to the documented exit codes.
func storeCommand(_ name: String, _ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let e as InUseError {
        printToStandardError("agent \(name): refused: \(e)\n")
        throw ExitCode(1)
    } catch let e as CacheInputError {
        printToStandardError("agent \(name): \(e)\n")
        throw ExitCode(2)
    } catch let e as CacheArchiveError {
        printToStandardError("agent \(name): \(e)\n")
        throw ExitCode(2)
    } catch let e as ExitCode {
        throw e
    } catch {
        printToStandardError("agent \(name): \(error)\n")
        throw ExitCode(3)
    }
}

func printJSON<T: Encodable>(_ value: T) throws {
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys]
    enc.dateEncodingStrategy = .iso8601
    writeAll(STDOUT_FILENO, try enc.encode(value) + Data("\n".utf8))
}

func ago(_ date: Date) -> String {
    let s = Int(max(0, Date().timeIntervalSince(date)))
    if s < 120 { return "\(s)s ago" }
    if s < 7200 { return "\(s / 60)m ago" }
    if s < 172800 { return "\(s / 3600)h ago" }
    return "\(s / 86400)d ago"
}

struct CacheList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List caches, least recently used first.")
    @OptionGroup var state: StateDirOption
    @Option(help: "Only this scope.") var scope: String?
    @Flag(help: "JSON output.") var json = false

    func run() async throws {
        try await storeCommand("cache ls") {
            let caches = try CacheStore(state: try state.open()).list(scope: scope)
            if json { try printJSON(caches); return }
            var lines = ["SCOPE\tID\tSIZE\tLAST USED\tIN USE"]
            for c in caches {
                lines.append("\(c.scope)\t\(c.id)\t\(ByteSize.format(c.sizeBytes))\t\(ago(c.lastUsed))\t\(c.inUse ? "yes" : "no")")
            }
            print(lines.joined(separator: "\n"))
        }
    }
}

struct CachePrune: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Delete caches, least recently used first, never one in use.",
        discussion: "Without --all, --keep-bytes or --older-than, keeps the default budget (10 GB or 20% of the disk, whichever is smaller)."
    )
    @OptionGroup var state: StateDirOption
    @Flag(help: "Delete every cache not in use.") var all = false
    @Option(name: .customLong("keep-bytes"), help: "Keep at most this much (e.g. 10GB, 500m).") var keepBytes: String?
    @Option(name: .customLong("older-than"), help: "Delete caches unused for this long (e.g. 7d, 12h).") var olderThan: String?
    @Option(help: "Only this scope.") var scope: String?
    @Flag(help: "JSON output.") var json = false

    func run() async throws {
        try await storeCommand("cache prune") {
            var options = PruneOptions(all: all, scope: scope)
            if let keepBytes {
                guard let v = ByteSize.parse(keepBytes) ?? (keepBytes == "0" ? 0 : nil) else {
                    throw CacheInputError("--keep-bytes: invalid size \"\(keepBytes)\" (e.g. 10GB, 500m, 1048576)")
                }
                options.keepBytes = v
            }
            if let olderThan {
                guard let d = AgeText.parse(olderThan) else {
                    throw CacheInputError("--older-than: invalid duration \"\(olderThan)\" (e.g. 7d, 12h, 30m)")
                }
                options.olderThan = d
            }
            let report = try await CacheStore(state: try state.open()).prune(options)
            if json { try printJSON(report); return }
            for c in report.removed { print("removed \(c.scope)/\(c.id) (\(ByteSize.format(c.sizeBytes)))") }
            for c in report.skippedInUse { print("skipped \(c.scope)/\(c.id): in use") }
            for f in report.failures { printToStandardError("agent cache prune: \(f)\n") }
            print("freed \(ByteSize.format(report.freedBytes)), kept \(ByteSize.format(report.keptBytes))")
            if !report.failures.isEmpty { throw ExitCode(3) }
        }
    }
}

struct CacheRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Delete one cache (refused while in use).")
    @OptionGroup var state: StateDirOption
    @Option(help: "Scope of the cache.") var scope = "default"
    @Argument(help: "Cache id.") var id: String

    func run() async throws {
        try await storeCommand("cache rm") {
            guard CacheKey.isValidScope(scope) else { throw CacheInputError("invalid cache scope \"\(scope)\"") }
            guard try await CacheStore(state: try state.open()).remove(scope: scope, id: id) else {
                throw CacheInputError("no cache \"\(id)\" in scope \(scope)")
            }
        }
    }
}

struct CacheExport: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "export", abstract: "Write a cache to a tar archive (.tar, .tar.gz, .tar.zst).")
    @OptionGroup var state: StateDirOption
    @Option(help: "Scope of the cache.") var scope = "default"
    @Argument(help: "Cache id.") var id: String
    @Option(name: .shortAndLong, help: "Archive to write; the format follows the extension.") var output: String

    func run() async throws {
        try await storeCommand("cache export") {
            let n = try await CacheStore(state: try state.open()).export(scope: scope, id: id, to: output)
            printToStandardError("exported \(n) entries to \(output)\n")
        }
    }
}

struct CacheImport: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Replace a cache with a tar archive's contents (refused while in use; a corrupt archive changes nothing)."
    )
    @OptionGroup var state: StateDirOption
    @Option(help: "Scope of the cache.") var scope = "default"
    @Argument(help: "Cache id.") var id: String
    @Argument(help: "Archive to read (.tar, .tar.gz, .tar.zst).") var archive: String
    @Option(help: "Agent policy file (default: $AGENT_POLICY, else the built-in policy); its cache budget bounds the import.")
    var policy: String?

    func run() async throws {
        try await storeCommand("cache import") {
            let policy = try AgentPolicy.resolve(commandLine: policy, environment: ProcessInfo.processInfo.environment).policy
            let stateDirectory = try state.open()
            // The budget GC keeps is also the most one import may write.
            let budget = CacheGC.budget(keepBytes: policy.cache.keepBytes,
                                        keepPercentOfDisk: policy.cache.keepPercentOfDisk, state: stateDirectory)
            let limits = ArchiveLimits(maxBytes: budget, maxEntries: policy.cacheImport.maxEntries)
            let n = try await CacheStore(state: stateDirectory).importArchive(scope: scope, id: id, from: archive, limits: limits)
            printToStandardError("imported \(n) entries into \(scope)/\(id)\n")
        }
    }
}

/// Hidden: holds a cache until killed, for tests of lock release on SIGKILL and of `ls`/`prune`.
/// Prints `held <path>` once the cache is held; with `--no-wait`, exits 1 instead of waiting.
struct CacheHold: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "hold", abstract: "Hold a cache (testing).", shouldDisplay: false)
    @OptionGroup var state: StateDirOption
    @Option(help: "Scope of the cache.") var scope = "default"
    @Option(help: "shared, private or locked.") var sharing = "locked"
    @Option(help: "Seconds to hold the cache (default: until killed).") var seconds: Int?
    @Flag(name: .customLong("no-wait"), help: "Exit 1 if the cache would have to be waited for.") var noWait = false
    @Argument(help: "Cache id.") var id: String

    func run() async throws {
        try await storeCommand("cache hold") {
            guard let s = MountSpec.Sharing(rawValue: sharing) else { throw CacheInputError("invalid sharing \"\(sharing)\"") }
            var cache = MountSpec.Cache(target: "/cache", id: id)
            cache.sharing = s
            let store = CacheStore(state: try state.open())
            let noWait = self.noWait
            let lease = try await store.acquire(cache, scope: scope) { message in
                printToStandardError("\(message)\n")
                if noWait { Glibc.exit(1) }
            }
            printToStandardOutput("held \(lease.hostPath)\n")
            try await Task.sleep(for: .seconds(seconds ?? 1_000_000_000))
            lease.release()
        }
    }
}
