import AgentCore
import AgentSupport
import ArgumentParser
import FoundationEssentials
import Glibc
import Images
import Sandbox
import SandboxPolicy

/// `agent image`: the image store under the state folder (README "Container images").
/// These are the operator's own commands: the policy's `images.allowedRegistries` limits
/// jobs and `agent exec --image`, not what the operator pulls here; its
/// `images.insecureRegistries` says which registries are plain HTTP besides loopback.
/// Exit codes: 0 ok, 1 not found (inspect, rm), 2 usage or invalid reference, 3 pull or
/// store failure (unreachable registry, wrong digest, hostile layer: the message names it).
struct ImageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image",
        abstract: "Manage container images (pull, push, import, export, ls, inspect, rm, prune, df).",
        discussion: "Exit codes: 0 ok, 1 not in the store, 2 usage or invalid reference, 3 pull or store failure.",
        subcommands: [ImagePull.self, ImagePush.self, ImageImport.self, ImageExport.self, ImageList.self, ImageInspect.self, ImageRemove.self, ImagePrune.self, ImageDiskUsage.self]
    )
}

/// Options every `agent image` command shares.
struct ImageStoreOptions: ParsableArguments {
    @OptionGroup var state: StateDirOption
    @Option(help: "Agent policy file (default: $AGENT_POLICY, else the built-in policy).")
    var policy: String?

    func store() throws -> ImageStore {
        let policy = try AgentPolicy.resolve(commandLine: policy, environment: ProcessInfo.processInfo.environment).policy
        let dir = try state.open()
        try dir.create()
        var store = try ImageStore(stateDirectory: dir.root, insecureRegistries: policy.images.insecureRegistries)
        store.storeMaxBytes = Int64(clamping: policy.images.storeMaxBytes)
        store.credentials = try RegistryCredentials.load(environment: ProcessInfo.processInfo.environment)
        // Snapshots for the mapping jobs get (auto): a pull here is what a job then uses.
        store.owners = OwnerRanges.forSteps(.automatic)
        return store
    }
}

/// Runs `body`, mapping failures to the documented exit codes with `agent: MESSAGE`.
func imageCommand(_ body: () throws -> Int32) throws {
    let code: Int32
    do {
        code = try body()
    } catch let e as ImageReferenceError {
        printToStandardError("agent: \(e)\n"); code = 2
    } catch let e as ImageError {
        printToStandardError("agent: \(e)\n"); code = 3
    } catch {
        printToStandardError("agent: \(error)\n"); code = error is CacheInputError ? 2 : 3
    }
    if code != 0 { throw ExitCode(code) }
}

func registryReference(_ text: String) throws -> ImageReference {
    guard case .registry(let r) = try ImageSource.parse(text) else {
        throw ImageError.unsupported(reference: text, problem: "local image sources are not supported yet")
    }
    return r
}

struct ImagePull: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pull", abstract: "Pull an image and unpack its layers.")
    @OptionGroup var options: ImageStoreOptions
    @Argument(help: "The image reference (alpine, host:port/name:tag, name@sha256:...).") var reference: String

    func run() async throws {
        try imageCommand {
            let ref = try registryReference(reference)
            let image = try options.store().pull(ref)
            for w in image.warnings { printToStandardError("agent: warning: \(w)\n") }
            print("\(image.reference) \(image.digest)")
            return 0
        }
    }
}

struct ImageImport: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import", abstract: "Import an OCI image layout (oci:DIR[:TAG]) or archive (oci-archive:FILE, docker-archive:FILE) into the store under a reference.")
    @OptionGroup var options: ImageStoreOptions
    @Argument(help: "oci:DIR[:TAG], oci-archive:FILE or docker-archive:FILE (a tar, plain or gzip)") var source: String
    @Option(help: "The reference jobs name it by, e.g. localhost/tool:1 (with \"pull\": \"never\").") var tag: String

    func run() async throws {
        try imageCommand {
            let key = try registryReference(tag).description
            func absolute(_ p: String) -> String { p.hasPrefix("/") ? p : FileManager.default.currentDirectoryPath + "/" + p }
            var image: PreparedImage
            let store = try options.store()
            switch try ImageSource.parse(source) {
            case .ociLayout(let dir, let t): image = try store.importLayout(path: absolute(dir), tag: t, as: key)
            case .ociArchive(let file): image = try store.importOCIArchive(file: absolute(file), tag: nil, as: key)
            case .dockerArchive(let file): image = try store.importDockerArchive(file: absolute(file), as: key)
            case .registry:
                throw ImageError.unsupported(reference: source, problem: "import takes oci:DIR[:TAG], oci-archive:FILE or docker-archive:FILE (pull a registry's image)")
            }
            image.lease = nil
            image.warnings += store.applyBudget(keep: [key])
            for w in image.warnings { printToStandardError("agent: warning: \(w)\n") }
            print("\(image.reference) \(image.digest)")
            return 0
        }
    }
}

struct ImageExport: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a stored image as an OCI layout (oci:DIR[:TAG]), an OCI archive (oci-archive:FILE[:TAG]) or a docker load archive (docker-archive:FILE[:REF]).")
    @OptionGroup var options: ImageStoreOptions
    @Argument(help: "The image reference.") var reference: String
    @Argument(help: "oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:REF] (TAG defaults to the reference's tag, else latest; REF to the reference)")
    var destination: String
    @Flag(help: "Replace an existing archive file (an existing file is refused otherwise).") var force = false

    func run() async throws {
        try imageCommand {
            let ref = try registryReference(reference)
            let store = try options.store()
            guard let rec = store.refs.get(ref.description) else { throw ImageError.notPresent(reference: ref.description) }
            func absolute(_ p: String) -> String { p.hasPrefix("/") ? p : FileManager.default.currentDirectoryPath + "/" + p }
            // FILE:NAME, the name after the last ':' that is not inside the path.
            func split(_ rest: String) -> (String, String?) {
                if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("/") {
                    return (String(rest[..<colon]), String(rest[rest.index(after: colon)...]))
                }
                return (rest, nil)
            }
            let tag = ref.tag ?? "latest"
            let dest: ExportDestination
            let name: String
            if destination.hasPrefix("oci-archive:"), case let rest = String(destination.dropFirst(12)), !rest.isEmpty {
                let (f, t) = split(rest); dest = .ociArchive(path: absolute(f)); name = t ?? tag
            } else if destination.hasPrefix("docker-archive:"), case let rest = String(destination.dropFirst(15)), !rest.isEmpty {
                // As skopeo reads it: the path ends at the first ':' (the reference has its own).
                let parts = rest.split(separator: ":", maxSplits: 1).map(String.init)
                dest = .dockerArchive(path: absolute(parts[0]))
                name = parts.count > 1 ? try registryReference(parts[1]).description : ref.description
            } else if case .ociLayout(let dir, let t) = try ImageSource.parse(destination) {
                dest = .ociLayout(path: absolute(dir)); name = t ?? tag
            } else {
                throw ImageError.unsupported(reference: destination, problem: "export takes oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:REF]")
            }
            try store.export(manifest: rec.manifest, to: dest, options: ExportOptions(names: [name], overwrite: force))
            print("exported \(ref.description) to \(destination)")
            return 0
        }
    }
}

struct ImagePush: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "push",
        abstract: "Push a stored image to its registry, or to DEST (blobs the registry has are not sent again).")
    @OptionGroup var options: ImageStoreOptions
    @Argument(help: "The stored image's reference.") var reference: String
    @Argument(help: "Where to push it (default: the reference itself).") var destination: String?
    @Option(help: "Blobs up to this many bytes are uploaded in one request, larger ones in chunks.")
    var monolithicLimit: Int64 = PushOptions().monolithicLimit
    @Option(help: "The size in bytes of one chunk of a chunked upload.") var chunkSize: Int64 = PushOptions().chunkSize

    func run() async throws {
        try imageCommand {
            let ref = try registryReference(reference)
            let dest = try registryReference(destination ?? reference)
            let store = try options.store()
            guard let rec = store.refs.get(ref.description) else { throw ImageError.notPresent(reference: ref.description) }
            guard monolithicLimit >= 0, chunkSize > 0 else {
                printToStandardError("agent: --monolithic-limit must be >= 0 and --chunk-size > 0\n")
                return 2
            }
            var o = PushOptions()
            o.monolithicLimit = monolithicLimit
            o.chunkSize = chunkSize
            let r = try store.push(manifest: rec.manifest, to: dest, options: o)
            print("pushed \(dest.description) \(r.digest) (\(r.uploadedMonolithic.count + r.uploadedChunked.count) uploaded, "
                  + "\(r.mounted.count) mounted, \(r.present.count) present, \(r.bytesUploaded) bytes)")
            return 0
        }
    }
}

struct ImageList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List stored images.")
    @OptionGroup var options: ImageStoreOptions

    func run() async throws {
        try imageCommand {
            let records = try options.store().refs.all().values.sorted { $0.reference < $1.reference }
            var lines = ["REFERENCE\tDIGEST\tMANIFEST"]
            for r in records { lines.append("\(r.reference)\t\(r.digest)\t\(r.manifest)") }
            print(lines.joined(separator: "\n"))
            return 0
        }
    }
}

struct ImageInspect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Show a stored image as JSON.")
    @OptionGroup var options: ImageStoreOptions
    @Argument(help: "The image reference.") var reference: String

    func run() async throws {
        try imageCommand {
            let key = try registryReference(reference).description
            let store = try options.store()
            guard let rec = store.refs.get(key) else {
                printToStandardError("agent: \(ImageError.notPresent(reference: key))\n")
                return 1
            }
            let l = try store.load(manifest: rec.manifest, reference: key)
            let chain = Digest.chainIDs(l.config.diffIDs)
            func list(_ a: [String]) -> String { "[" + a.map(jsonQuoted).joined(separator: ", ") + "]" }
            var out = "{\n  \"reference\": \(jsonQuoted(key)),\n  \"digest\": \"\(rec.digest)\",\n  \"manifest\": \"\(rec.manifest)\",\n"
            out += "  \"config\": \"\(l.configDigest)\",\n"
            out += "  \"layers\": \(list(l.layers.map(\.digest.description))),\n"
            out += "  \"diffIDs\": \(list(l.config.diffIDs.map(\.description))),\n"
            out += "  \"snapshots\": \(list(chain.map { store.snapshots.path($0) })),\n"
            out += "  \"env\": \(list(l.config.env)),\n  \"user\": \(jsonQuoted(l.config.user ?? "")),\n"
            out += "  \"workingDir\": \(jsonQuoted(l.config.workingDir ?? "")),\n"
            out += "  \"entrypoint\": \(list(l.config.entrypoint)),\n  \"cmd\": \(list(l.config.cmd))\n}"
            print(out)
            return 0
        }
    }
}

struct ImageRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove an image's reference from the store.")
    @OptionGroup var options: ImageStoreOptions
    @Argument(help: "The image reference.") var reference: String

    func run() async throws {
        try imageCommand {
            let key = try registryReference(reference).description
            guard try options.store().remove(key) else {
                printToStandardError("agent: \(ImageError.notPresent(reference: key))\n")
                return 1
            }
            print("removed \(key)")
            return 0
        }
    }
}

struct ImagePrune: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune", abstract: "Remove the blobs and snapshots no stored reference needs (never one a running container uses).")
    @OptionGroup var options: ImageStoreOptions

    func run() async throws {
        try imageCommand {
            let store = try options.store()
            let r = try store.prune()
            print("removed \(r.blobs) blobs and \(r.snapshots) snapshots (\(r.bytes) bytes); \(r.inUse) snapshots in use kept")
            // A store over its budget (images.storeMaxBytes) also loses its least recently used images.
            for note in store.applyBudget(keep: []) { print(note) }
            return 0
        }
    }
}

struct ImageDiskUsage: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "df", abstract: "Print the bytes the image store holds (blobs and unpacked snapshots) and its budget.")
    @OptionGroup var options: ImageStoreOptions

    func run() async throws {
        try imageCommand {
            let store = try options.store()
            print("store \(store.usage()) bytes, budget \(store.storeMaxBytes.map(String.init) ?? "none") bytes (images.storeMaxBytes)")
            return 0
        }
    }
}
