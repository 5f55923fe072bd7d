import AgentCore
import ArgumentParser
import AgentSupport
import FoundationEssentials
import Glibc

/// `agent volume`: persistent named volumes for `type=volume` mounts. Never collected
/// automatically. Exit codes: 0 ok, 1 refused (in use), 2 usage or invalid input, 3 other.
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
    @Flag(help: "JSON output.") var json = false

    func run() async throws {
        try await storeCommand("volume ls") {
            let volumes = VolumeStore(state: try state.open()).list()
            if json { try printJSON(volumes); return }
            var lines = ["NAME\tSIZE\tCREATED\tIN USE"]
            for v in volumes { lines.append("\(v.name)\t\(ByteSize.format(v.sizeBytes))\t\(ago(v.created))\t\(v.inUse ? "yes" : "no")") }
            print(lines.joined(separator: "\n"))
        }
    }
}

struct VolumeCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a volume (no error if it exists).")
    @OptionGroup var state: StateDirOption
    @Argument(help: "Volume name: [A-Za-z0-9][A-Za-z0-9._-]*.") var name: String

    func run() async throws {
        try await storeCommand("volume create") {
            try VolumeStore(state: try state.open()).create(name)
            print(name)
        }
    }
}

struct VolumeRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Delete volumes (refused while in use).")
    @OptionGroup var state: StateDirOption
    @Argument(help: "Volume names.") var names: [String]

    func run() async throws {
        try await storeCommand("volume rm") {
            let store = VolumeStore(state: try state.open())
            for name in names {
                guard try await store.remove(name) else { throw CacheInputError("no volume \"\(name)\"") }
                print(name)
            }
        }
    }
}

struct VolumePrune: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "prune", abstract: "Delete every volume not in use.")
    @OptionGroup var state: StateDirOption

    func run() async throws {
        try await storeCommand("volume prune") {
            for name in try await VolumeStore(state: try state.open()).prune() { print("removed \(name)") }
        }
    }
}

/// Hidden: holds a volume until killed (tests of `rm` refusing a volume in use).
struct VolumeHold: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "hold", abstract: "Hold a volume (testing).", shouldDisplay: false)
    @OptionGroup var state: StateDirOption
    @Argument(help: "Volume name.") var name: String

    func run() async throws {
        try await storeCommand("volume hold") {
            let lease = try await VolumeStore(state: try state.open()).acquire(name: name, readOnly: false)
            printToStandardOutput("held \(lease.hostPath)\n")
            try await Task.sleep(for: .seconds(1_000_000_000))
            lease.release()
        }
    }
}
