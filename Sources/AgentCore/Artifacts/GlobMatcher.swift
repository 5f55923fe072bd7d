#if canImport(Glibc)
import Glibc
#endif

/// A bad glob; names the pattern and what is wrong with it.
public struct GlobPatternError: Error, Sendable, Equatable, CustomStringConvertible {
    public var pattern: String
    public var reason: String
    public var description: String { "pattern \"\(pattern)\": \(reason)" }
}

/// A workspace-relative glob, validated: never absolute, never `..`.
///
/// Semantics (documented in README "Test steps, JUnit reports and artifacts"):
/// - `/` separates segments; within a segment `*`, `?`, `[...]` and `\` escapes work as
///   in `fnmatch(3)` and never cross a `/`;
/// - `**` as a whole segment matches any number of segments (zero or more); a trailing
///   `**` matches everything below its folder (but not the folder itself);
/// - dotfiles: wildcards (including `**`) do not match a name that starts with `.`
///   (`FNM_PERIOD`, as in a shell without `dotglob`), so `**` never picks up `.git` or
///   `.env` by accident; name them (`.config/**`, `**/.*`) to collect them;
/// - a pattern that matches a directory (`dist`, `build/*`) collects everything under it,
///   dotfiles included, like `cp -r`.
/// Exclude patterns use the same syntax but wildcards there also match dotfiles
/// (excluding more is the safe direction), and excluding a directory excludes its contents.
public struct GlobPattern: Sendable, Equatable, CustomStringConvertible {
    enum Segment: Sendable, Equatable {
        case literal(String)
        case wildcard(String)
        case anyDepth
    }

    /// The pattern as written.
    public let text: String
    let segments: [Segment]

    public var description: String { text }

    public init(_ text: String) throws(GlobPatternError) {
        self.text = text
        func fail(_ reason: String) -> GlobPatternError { GlobPatternError(pattern: text, reason: reason) }
        guard !text.isEmpty else { throw fail("is empty") }
        guard !text.hasPrefix("/") else {
            throw fail("absolute paths are not allowed (artifact patterns are relative to the workspace)")
        }
        guard !text.utf8.contains(0) else { throw fail("contains a NUL byte") }
        var segments: [Segment] = []
        for part in text.split(separator: "/", omittingEmptySubsequences: true) {
            let s = String(part)
            if s == "." { continue }
            if s == ".." { throw fail("\"..\" is not allowed (it would leave the workspace)") }
            if s == "**" {
                if segments.last != .anyDepth { segments.append(.anyDepth) }
            } else if s.contains(where: { "*?[\\".contains($0) }) {
                segments.append(.wildcard(s))
            } else {
                segments.append(.literal(s))
            }
        }
        // A matched directory is collected whole, so a trailing `**` (one or more segments)
        // is the same as a trailing `*`; with zero segments it would match its own folder.
        if segments.last == .anyDepth {
            segments[segments.count - 1] = .wildcard("*")
        }
        self.segments = segments
    }

    /// Leading literal segments: the folder a walk for this pattern starts in.
    var literalPrefix: [String] {
        var out: [String] = []
        for s in segments {
            guard case .literal(let name) = s else { break }
            out.append(name)
        }
        return out
    }

    /// Whether the whole pattern is literal (names one path).
    var isLiteral: Bool { literalPrefix.count == segments.count }
}

/// Runs a `GlobPattern` over path segments one at a time (a small NFA over the pattern's
/// segments), so a directory walk can prune folders no match can be under.
struct GlobMatcher: Sendable {
    let pattern: GlobPattern
    /// Whether wildcards may match names starting with `.`.
    let matchDotfiles: Bool

    /// Positions in the pattern reached so far (index `n` = the whole pattern matched).
    struct State: Equatable, Sendable {
        var positions: [Int]
        var isEmpty: Bool { positions.isEmpty }
    }

    init(_ pattern: GlobPattern, matchDotfiles: Bool) {
        self.pattern = pattern
        self.matchDotfiles = matchDotfiles
    }

    /// The state before any segment: at the start of the pattern.
    var start: State { closure([0]) }

    /// The state after `offset` literal segments (where a walk from the literal prefix starts).
    func state(after offset: Int) -> State { closure([offset]) }

    func isMatch(_ state: State) -> Bool { state.positions.contains(pattern.segments.count) }

    /// Whether a path with this state could still match after more segments.
    func canContinue(_ state: State) -> Bool { state.positions.contains { $0 < pattern.segments.count } }

    /// The state after one more path segment `name`.
    func step(_ state: State, _ name: String) -> State {
        let segs = pattern.segments
        let isDot = name.hasPrefix(".")
        var next: [Int] = []
        for i in state.positions where i < segs.count {
            switch segs[i] {
            case .anyDepth:
                if matchDotfiles || !isDot { next.append(i) }
            case .literal(let s):
                if s == name { next.append(i + 1) }
            case .wildcard(let p):
                let flags: Int32 = matchDotfiles ? 0 : FNM_PERIOD
                if fnmatch(p, name, flags) == 0 { next.append(i + 1) }
            }
        }
        return closure(next)
    }

    /// Adds the positions reachable by letting `**` match zero segments.
    private func closure(_ positions: [Int]) -> State {
        var out: [Int] = []
        var queue = positions
        while let i = queue.popLast() {
            if out.contains(i) { continue }
            out.append(i)
            if i < pattern.segments.count, pattern.segments[i] == .anyDepth { queue.append(i + 1) }
        }
        return State(positions: out.sorted())
    }

    /// Whether `path` (relative, `/`-separated) or one of its parent folders matches.
    func matchesPathOrParent(_ path: [String]) -> Bool {
        var state = start
        if isMatch(state) { return true }
        for name in path {
            state = step(state, name)
            if isMatch(state) { return true }
            if state.isEmpty { return false }
        }
        return false
    }
}
