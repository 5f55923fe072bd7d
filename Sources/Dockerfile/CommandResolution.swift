/// A command ready to execute: the argv and the files it needs mounted (a heredoc
/// script with a `#!` line becomes a file under `/dev/pipes/`, as BuildKit does).
public struct ResolvedCommand: Sendable, Equatable {
    /// The program and its arguments.
    public var arguments: [String]
    /// Files to mount read-only before running.
    public var files: [InlineFile]
}

/// A file made from a heredoc.
public struct InlineFile: Sendable, Equatable {
    /// Where it is mounted (`/dev/pipes/EOF`).
    public var path: String
    public var contents: String
    /// Its mode (0755 for a script).
    public var mode: UInt32
}

extension CommandLine {
    /// The argv of this command in `shell`: exec form as is; shell form `shell + [text]`.
    /// An empty shell-form command gives `shell + [""]`, as BuildKit stores it.
    public func withShell(_ shell: [String]) -> [String] {
        guard prependsShell else { return arguments }
        return shell + [arguments.first ?? ""]
    }

    /// The argv of a `RUN`, heredocs resolved as BuildKit does: `RUN <<EOF` alone runs the
    /// body as the shell's script (a body starting `#!` is written to `/dev/pipes/EOF`,
    /// mode 0755, and run); any other command with heredocs (`RUN python3 <<EOF`, several
    /// heredocs) is given whole to the shell, which reads the bodies itself.
    public func resolved(shell: [String]) -> ResolvedCommand {
        guard prependsShell, !heredocs.isEmpty, let first = arguments.first else {
            return ResolvedCommand(arguments: withShell(shell), files: [])
        }
        if HeredocMarker.parse(first) != nil, let doc = heredocs.first {
            let data = doc.text
            if data.hasPrefix("#!") {
                let path = "/dev/pipes/" + doc.name
                return ResolvedCommand(arguments: shell + [path], files: [InlineFile(path: path, contents: data, mode: 0o755)])
            }
            return ResolvedCommand(arguments: shell + [data], files: [])
        }
        var full = first
        for doc in heredocs { full += "\n" + doc.content + doc.name }
        return ResolvedCommand(arguments: shell + [full], files: [])
    }
}
