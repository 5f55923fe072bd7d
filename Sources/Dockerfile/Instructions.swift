/// A parsed Dockerfile: its parser directives, the global `ARG`s before the first `FROM`,
/// and its stages in file order. Made by `Dockerfile.parse(_:file:)`; nothing is expanded
/// yet (expansion needs the build args and each stage's environment, see `StageState`).
public struct Dockerfile: Sendable, Equatable {
    /// The file name used in error messages.
    public var file: String
    /// The value of a `# syntax=` directive. The agent does not fetch frontend images: the
    /// built-in frontend (`dockerfile:1`) reads the file, and callers report that.
    public var syntax: String?
    /// The value of a `# check=` directive, kept and otherwise ignored.
    public var check: String?
    /// The escape character, `\` or the one `# escape=` chose.
    public var escape: Character
    /// The `ARG` instructions before the first `FROM` (the global scope).
    public var globalArgs: [Instruction]
    /// The stages in file order; `stages[i].index == i`.
    public var stages: [Stage]
    /// Remarks that do not stop the build (empty continuation lines, `MAINTAINER`).
    public var warnings: [DockerfileWarning]
}

/// One build stage: its `FROM` and the instructions up to the next `FROM`.
public struct Stage: Sendable, Equatable {
    /// The stage's position, 0 for the first `FROM`.
    public var index: Int
    /// The name from `AS name`, lower-cased as BuildKit does; nil when unnamed.
    public var name: String?
    /// The `FROM` instruction (its `command` is `.from`).
    public var from: Instruction
    /// The instructions after the `FROM`, in order.
    public var instructions: [Instruction]

    /// The `FROM` arguments, unexpanded.
    public var base: FromCommand {
        if case .from(let f) = from.command { return f }
        preconditionFailure("a stage starts with FROM")
    }

    /// The name progress output uses: the stage name, or its index.
    public var displayName: String { name ?? String(index) }
}

/// One instruction with where it came from.
public struct Instruction: Sendable, Equatable {
    /// The keyword in upper case (`RUN`), as progress output shows it.
    public var keyword: String
    /// The 1-based line the instruction starts on.
    public var line: Int
    /// The last line it spans, heredoc bodies included.
    public var endLine: Int
    /// The instruction as written, continuation lines joined (without heredoc bodies),
    /// leading and trailing blanks trimmed: `RUN --mount=type=cache,target=/c make`.
    public var original: String
    /// The flags (`--mount=...`) as written, before parsing.
    public var flags: [String]
    /// The typed instruction.
    public var command: Command
}

/// The typed form of each instruction. Words are as written (quotes kept where BuildKit
/// keeps them for the expander); `StageState.apply` returns the expanded form.
public enum Command: Sendable, Equatable {
    case from(FromCommand)
    case run(RunCommand)
    /// `COPY`; `CopyCommand.isAdd` is false.
    case copy(CopyCommand)
    /// `ADD`; `CopyCommand.isAdd` is true.
    case add(CopyCommand)
    case env([KeyValue])
    case arg([ArgDeclaration])
    case workdir(String)
    case user(String)
    case label([KeyValue])
    /// Ports (`80`, `53/udp`), sorted as BuildKit sorts them.
    case expose([String])
    case volume([String])
    case cmd(CommandLine)
    case entrypoint(CommandLine)
    /// `SHELL`, JSON form only.
    case shell([String])
    case stopSignal(String)
    case healthcheck(Healthcheck)
    /// `ONBUILD`: the trigger instruction as text (heredoc bodies appended), run when a
    /// later build starts from the image; parse it with `Dockerfile.parseInstruction`.
    case onbuild(String)
    /// `MAINTAINER` (deprecated): becomes the image config's `author`.
    case maintainer(String)
}

/// `FROM [--platform=P] image [AS name]`.
public struct FromCommand: Sendable, Equatable {
    /// The image reference, an earlier stage's name or index, or `scratch`; unexpanded
    /// (global ARGs apply).
    public var image: String
    /// The stage name, lower-cased.
    public var name: String?
    /// `--platform`, unexpanded.
    public var platform: String?
}

/// A command line of `RUN`, `CMD`, `ENTRYPOINT` or `HEALTHCHECK CMD`.
public struct CommandLine: Sendable, Equatable {
    /// Exec form: the JSON array's strings. Shell form: one string, the rest of the
    /// instruction as written (the shell expands it, not the frontend).
    public var arguments: [String]
    /// True in shell form: the stage's `SHELL` is put in front.
    public var prependsShell: Bool
    /// Heredoc bodies in the order their `<<` appear (shell form only).
    public var heredocs: [Heredoc]

    public init(arguments: [String], prependsShell: Bool, heredocs: [Heredoc] = []) {
        self.arguments = arguments
        self.prependsShell = prependsShell
        self.heredocs = heredocs
    }
}

/// A heredoc body: `<<EOF`, `<<-EOF`, `<<"EOF"`, `3<<EOF`.
public struct Heredoc: Sendable, Equatable {
    /// The delimiter word, quotes removed (`EOF`).
    public var name: String
    /// The body as written, each line with its newline, without the terminator line.
    public var content: String
    /// False when the delimiter was quoted: the body is taken literally.
    public var expands: Bool
    /// True for `<<-`: leading tabs are removed from every body line.
    public var stripsTabs: Bool
    /// The file descriptor before `<<` (`3<<EOF`), 0 when none was written.
    public var fileDescriptor: Int

    /// The body with leading tabs stripped for `<<-`.
    public var text: String {
        stripsTabs ? Heredoc.stripLeadingTabs(content) : content
    }

    static func stripLeadingTabs(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        var atLineStart = true
        for ch in s {
            if atLineStart && ch == "\t" { continue }
            atLineStart = ch == "\n"
            out.append(ch)
        }
        return out
    }
}

/// `RUN [--mount=...]... [--network=...] [--security=...] command`.
public struct RunCommand: Sendable, Equatable {
    /// The command in shell, exec or heredoc form.
    public var command: CommandLine
    /// The `--mount` specs, parsed. Values are unexpanded in `Dockerfile.parse`'s result
    /// and expanded in `StageState.apply`'s.
    public var mounts: [RunMount]
    /// `--network`, nil when not given (the default network, under the policy).
    public var network: NetworkMode?
    /// `--security`, nil when not given (sandboxed).
    public var security: SecurityMode?
    /// The `--mount` values as written, kept for expansion.
    public var mountSpecs: [String]
}

/// `RUN --network=`.
public enum NetworkMode: String, Sendable, Equatable, CaseIterable {
    case `default`, none, host
}

/// `RUN --security=`.
public enum SecurityMode: String, Sendable, Equatable, CaseIterable {
    case sandbox, insecure
}

/// `COPY`/`ADD` sources, destination and flags.
public struct CopyCommand: Sendable, Equatable {
    /// True for `ADD` (tar extraction, URLs), false for `COPY`.
    public var isAdd: Bool
    /// The source paths or patterns (URLs for `ADD`), unexpanded until `apply`.
    public var sources: [String]
    /// Heredoc sources (`COPY <<EOF /file`): `path` is the file name, `data` its body.
    public var inlineSources: [InlineSource]
    /// The destination, unexpanded until `apply`.
    public var destination: String
    /// `--from=stage|index|image` (COPY only).
    public var from: String?
    /// `--chown=user:group`.
    public var chown: String?
    /// `--chmod=0755` (octal) or symbolic.
    public var chmod: String?
    /// `--link`.
    public var link: Bool
    /// `--parents` (COPY only).
    public var parents: Bool
    /// `--exclude=pattern`, any number.
    public var excludes: [String]
    /// `--keep-git-dir` (ADD only), nil when not given.
    public var keepGitDir: Bool?
    /// `--checksum=sha256:...` (ADD only).
    public var checksum: String?
    /// `--unpack` (ADD only), nil when not given.
    public var unpack: Bool?
}

/// A heredoc used as a `COPY`/`ADD` source.
public struct InlineSource: Sendable, Equatable {
    /// The file name (the heredoc's delimiter word).
    public var path: String
    /// The body, tabs already stripped for `<<-`; expanded by `apply` when `expands`.
    public var data: String
    /// False when the delimiter was quoted.
    public var expands: Bool
}

/// `ENV k=v`, `LABEL k=v`; `ENV k v` (legacy) has `legacyForm` set.
public struct KeyValue: Sendable, Equatable {
    public var key: String
    public var value: String
    /// True for the `ENV key value` form without `=`.
    public var legacyForm: Bool

    public init(key: String, value: String, legacyForm: Bool = false) {
        self.key = key
        self.value = value
        self.legacyForm = legacyForm
    }
}

/// `ARG name` or `ARG name=default`.
public struct ArgDeclaration: Sendable, Equatable {
    public var name: String
    /// The default value, unexpanded; nil for `ARG name`.
    public var defaultValue: String?

    public init(name: String, defaultValue: String?) {
        self.name = name
        self.defaultValue = defaultValue
    }
}

/// `HEALTHCHECK NONE` or `HEALTHCHECK [options] CMD command`, as the image config holds it.
public struct Healthcheck: Sendable, Equatable {
    /// `["NONE"]`, `["CMD", args...]` (exec form) or `["CMD-SHELL", command]`.
    public var test: [String]
    /// Durations in nanoseconds, 0 when not given.
    public var interval: Int64
    public var timeout: Int64
    public var startPeriod: Int64
    public var startInterval: Int64
    /// `--retries`, 0 when not given.
    public var retries: Int
}
