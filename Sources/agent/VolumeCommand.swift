import AgentCore
import ArgumentParser
import AgentSupport
import FoundationEssentials
import Glibc

/// `agent volume`: persistent named volumes for `type=volume` mounts. Never collected
/// automatically. Volumes live in cache scopes, as jobs see them (`--cache-scope` of
/// run-job/watch): `--scope` picks one (create, rm: default `default`; ls, prune: every
/// scope unless given, as `agent cache ls/prune`).
/// Exit codes: 0 ok, 1 refused (in use), 2 usage or invalid input, 3 other.
struct VolumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "volume",
        abstract: "Manage named volumes (ls, create, rm, prune).",
        discussion: "Exit codes: 0 ok, 1 refused because a volume is in use, 2 usage or invalid input, 3 other failure.",
        subcommands: [VolumeList.self, VolumeCreate.self, VolumeRemove.self, VolumePrune.self, VolumeHold.self]
    )
}

struct VolumeList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List volumes.")
    @OptionGroup var state: StateDirOption
    @Option(help: "Only this scope (default: every scope).") var scope: String?
    @Flag(help: "JSON output.") var json = false

    func run() async throws {
        try await storeCommand("volume ls") {
            let volumes = try VolumeStore(state: try state.open()).list(scope: scope)
            if json { try printJSON(volumes); return }
            var lines = ["SCOPE\tNAME\tSIZE\tCREATED\tIN USE"]
            for v in volumes { lines.append("\(v.scope)\t\(v.name)\t\(ByteSize.format(v.sizeBytes))\t\(ago(v.created))\t\(v.inUse ? "yes" : "no")") }
            print(lines.joined(separator: "\n"))
        }
    }
}

struct VolumeCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a volume (no error if it exists).")
    @OptionGroup var state: StateDirOption
    @Option(help: "The cache scope the volume belongs to (jobs run with --cache-scope SCOPE see it).") var scope = "default"
    @Argument(help: "Volume name: [A-Za-z0-9][A-Za-z0-9._-]*.") var name: String

    func run() async throws {
        try await storeCommand("volume create") {
            try VolumeStore(state: try state.open()).create(name, scope: scope)
            print(name)
        }
    }
}

struct VolumeRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Delete volumes (refused while in use).")
    @OptionGroup var state: StateDirOption
    @Option(help: "The scope of the volumes.") var scope = "default"
    @Argument(help: "Volume names.") var names: [String]

    func run() async throws {
        try await storeCommand("volume rm") {
            let store = VolumeStore(state: try state.open())
            for name in names {
                guard try await store.remove(name, scope: scope) else {
                    throw CacheInputError("no volume \"\(name)\" in scope \"\(scope)\"")
                }
                print(name)
            }
        }
    }
}

struct VolumePrune: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "prune", abstract: "Delete every volume not in use.")
    @OptionGroup var state: StateDirOption
    @Option(help: "Only this scope (default: every scope).") var scope: String?

    func run() async throws {
        try await storeCommand("volume prune") {
            for v in try await VolumeStore(state: try state.open()).prune(scope: scope) { print("removed \(v.scope)/\(v.name)") }
        }
    }
}

/// Hidden: holds a volume until killed (tests of `rm` refusing a volume in use).
struct VolumeHold: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "hold", abstract: "Hold a volume (testing).", shouldDisplay: false)
    @OptionGroup var state: StateDirOption
    @Option(help: "The scope of the volume.") var scope = "default"
    @Argument(help: "Volume name.") var name: String

    func run() async throws {
        try await storeCommand("volume hold") {
            let lease = try await VolumeStore(state: try state.open()).acquire(name: name, scope: scope, readOnly: false)
            printToStandardOutput("held \(lease.hostPath)\n")
            try await Task.sleep(for: .seconds(1_000_000_000))
            lease.release()
        }
    }
}
