/// What an `ADD` source names, as BuildKit tells them apart: a git repository, a remote
/// URL, or a path in the context (or the `--from` stage).
public enum AddSource: Sendable, Equatable {
    /// A path or glob in the build context.
    case local(String)
    /// `http://` or `https://`: fetched under the network policy by the executor.
    case url(String)
    /// `git://`, `git@host:repo`, `ssh://`, `github.com/...`, or an http(s) URL of a
    /// `.git` repository: not supported by `agent build` (the plan refuses it).
    case git(String)

    /// Classifies one `ADD` source (after expansion).
    public static func classify(_ source: String) -> AddSource {
        let lower = source.lowercased()
        if lower.hasPrefix("git://") || lower.hasPrefix("git@") || lower.hasPrefix("ssh://") || lower.hasPrefix("github.com/") {
            return .git(source)
        }
        if lower.hasPrefix("http://") || lower.hasPrefix("https://") {
            let path = lower.split(separator: "#", maxSplits: 1)[0].split(separator: "?", maxSplits: 1)[0]
            if path.hasSuffix(".git") || lower.contains(".git#") { return .git(source) }
            return .url(source)
        }
        return .local(source)
    }
}

extension CopyCommand {
    /// The sources classified (`ADD` only; `COPY` sources are always local).
    public var classifiedSources: [AddSource] {
        isAdd ? sources.map(AddSource.classify) : sources.map { .local($0) }
    }
}

extension Dockerfile {
    /// What `agent build` says about a `# syntax=` directive: the named frontend image is
    /// not fetched, the built-in `dockerfile:1` frontend reads the file. Nil without one.
    public var syntaxNotice: String? {
        guard let syntax else { return nil }
        return "\(file): # syntax=\(syntax) is not fetched: agent build reads the Dockerfile with its built-in dockerfile:1 frontend"
    }
}
