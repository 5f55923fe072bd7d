import FoundationEssentials
import Glibc

/// A Dockerfile that cannot be built as written: it names the file, the line and the
/// instruction, so `agent build` can refuse it (exit 2) before anything runs.
///
/// `description` is the one-line form the CLI prints, as BuildKit words it:
/// `Dockerfile:7: unknown instruction "RUNN" (did you mean "RUN"?)`.
public struct DockerfileError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The class of the error, stable for callers and tests.
    public enum Code: String, Sendable, Equatable {
        /// The file is larger than `DockerfileLimits.maxBytes`, has too many lines, or an
        /// expansion or heredoc exceeded its bound.
        case tooLarge = "too-large"
        /// No instruction at all, or no `FROM`.
        case empty
        /// A keyword that is no Dockerfile instruction.
        case unknownInstruction = "unknown-instruction"
        /// Wrong number or shape of arguments of a known instruction.
        case arguments
        /// A `--flag` the instruction does not take, or a bad flag value.
        case flag
        /// A `RUN --mount=` spec with an unknown type, key or bad value.
        case mount
        /// A heredoc without its terminator, or in a place that takes none.
        case heredoc
        /// A parser directive that is malformed or repeated.
        case directive
        /// `${VAR?message}` and other expansion failures (quotes, bad substitution).
        case expansion
        /// An instruction before the first `FROM` other than `ARG`, a duplicate stage name,
        /// a stage that refers to itself or a later stage.
        case stage
        /// `--target` names no stage.
        case target
        /// Syntax the agent parses but does not build (e.g. `RUN --mount=type=ssh`).
        case unsupported
    }

    /// The error class.
    public var code: Code
    /// The Dockerfile's name as the user gave it (`Dockerfile`, `ci/Dockerfile.release`).
    public var file: String
    /// The 1-based line where the instruction starts; nil for errors about the whole file.
    public var line: Int?
    /// The instruction keyword in upper case (`RUN`), when the error is about one.
    public var instruction: String?
    /// What is wrong, without the file and line prefix.
    public var message: String
    /// The stage of the build that failed, for the agent's `{stage, message}` errors.
    public var stage: String { "dockerfile" }

    /// Creates an error; `file` and `line` are usually filled in by the parser.
    public init(_ code: Code, _ message: String, file: String = "Dockerfile", line: Int? = nil, instruction: String? = nil) {
        self.code = code
        self.message = message
        self.file = file
        self.line = line
        self.instruction = instruction
    }

    /// `Dockerfile:7: message`, or `Dockerfile: message` without a line.
    public var description: String {
        if let line { return "\(file):\(line): \(message)" }
        return "\(file): \(message)"
    }

    /// A copy located at `line` of `file`, keeping a location it already has.
    func located(file: String, line: Int, instruction: String?) -> DockerfileError {
        var copy = self
        copy.file = file
        if copy.line == nil { copy.line = line }
        if copy.instruction == nil { copy.instruction = instruction }
        return copy
    }
}

/// A remark about a Dockerfile that does not stop the build, as BuildKit prints
/// `[WARNING]: Empty continuation line found in: ...`.
public struct DockerfileWarning: Sendable, Equatable, CustomStringConvertible {
    /// The 1-based line the warning is about, if any.
    public var line: Int?
    /// The warning text.
    public var message: String

    public init(line: Int?, message: String) {
        self.line = line
        self.message = message
    }

    public var description: String {
        if let line { return "line \(line): \(message)" }
        return message
    }
}

/// The bounds the parser holds a Dockerfile to (README, section dockerfile). The
/// Dockerfile is untrusted input: none of these can be raised by it.
public enum DockerfileLimits {
    /// The largest Dockerfile read: 1 MiB.
    public static let maxBytes = 1 << 20
    /// The most lines (counting heredoc bodies): 20 000.
    public static let maxLines = 20_000
    /// The most instructions: 5 000.
    public static let maxInstructions = 5_000
    /// The most stages: 200.
    public static let maxStages = 200
    /// The largest result of expanding one word: 256 KiB.
    public static let maxExpansionBytes = 256 << 10
    /// The deepest nesting of `${...}` inside `${...}`: 32.
    public static let maxExpansionDepth = 32
}
