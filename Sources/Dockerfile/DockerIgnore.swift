/// A `.dockerignore` file, read and matched as moby's patternmatcher does: one pattern a
/// line, `#` lines are comments, blanks trimmed, `!` re-includes, paths cleaned (`./`, a
/// leading `/`, `..`), `*` and `?` stop at `/`, `**` spans folders, `[a-z]` classes,
/// `\` escapes; the last matching pattern wins, and a pattern that matches a folder
/// matches everything under it.
///
/// The executor's context walker asks `isExcluded(_:)` for each relative path, and for an
/// excluded folder `mayReinclude(beneath:)` to know whether it must still descend (an
/// exception could match something inside) or can skip it whole.
public struct DockerIgnore: Sendable, Equatable {
    /// One cleaned pattern.
    public struct Pattern: Sendable, Equatable {
        /// The pattern as cleaned (`!` removed).
        public var text: String
        /// True for `!pattern`.
        public var isException: Bool
        let matcher: PathGlob
    }

    /// The patterns in file order.
    public let patterns: [Pattern]

    /// The most patterns read: 10 000 (a bound on untrusted context input).
    public static let maxPatterns = 10_000

    /// Reads `.dockerignore` text; throws for a lone `!` or too many patterns, naming the line.
    public init(text: String) throws(DockerfileError) {
        var out: [Pattern] = []
        var lineNo = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNo += 1
            var line = Substring(rawLine)
            if lineNo == 1 && line.hasPrefix("\u{FEFF}") { line = line.dropFirst() }
            if line.hasPrefix("#") { continue }
            var p = line.trimmingBlanks()
            if p.isEmpty { continue }
            let invert = p.hasPrefix("!")
            if invert { p = String(p.dropFirst()).trimmingBlanks() }
            if !p.isEmpty {
                p = DockerIgnore.cleanPattern(p)
                if p.count > 1 && p.hasPrefix("/") { p.removeFirst() }
            }
            if invert && p.isEmpty {
                throw DockerfileError(.arguments, "illegal exclusion pattern: \"!\"", file: ".dockerignore", line: lineNo)
            }
            out.append(Pattern(text: p, isException: invert, matcher: PathGlob(p)))
            if out.count > DockerIgnore.maxPatterns {
                throw DockerfileError(.tooLarge, "more than \(DockerIgnore.maxPatterns) patterns", file: ".dockerignore", line: lineNo)
            }
        }
        patterns = out
    }

    /// Go's filepath.Clean, relative results kept relative (`./a/../b` is `b`).
    static func cleanPattern(_ p: String) -> String {
        let absolute = p.hasPrefix("/")
        var parts: [Substring] = []
        for part in p.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." {
                if let last = parts.last, last != ".." { parts.removeLast() } else if !absolute { parts.append(part) }
                continue
            }
            parts.append(part)
        }
        let body = parts.joined(separator: "/")
        if absolute { return "/" + body }
        return body.isEmpty ? "." : body
    }

    /// True when some `!` pattern exists.
    public var hasExceptions: Bool { patterns.contains { $0.isException } }

    /// Whether `path` (relative to the context, `/`-separated, no leading `./`) is
    /// excluded: the last pattern matching it or one of its parent folders decides.
    public func isExcluded(_ path: String) -> Bool {
        let file = DockerIgnore.cleanPattern(path)
        let parents = file.split(separator: "/").dropLast().map(String.init)
        var matched = false
        for p in patterns {
            // An include needs no re-check once matched, an exception only once matched.
            if p.isException != matched { continue }
            var hit = p.matcher.matches(file)
            if !hit && !parents.isEmpty {
                for i in 1...parents.count where p.matcher.matches(parents[0..<i].joined(separator: "/")) {
                    hit = true
                    break
                }
            }
            if hit { matched = !p.isException }
        }
        return matched
    }

    /// Whether an exception pattern could re-include something beneath the excluded
    /// folder `dir`: if not, the walker skips the folder without reading it.
    public func mayReinclude(beneath dir: String) -> Bool {
        let d = DockerIgnore.cleanPattern(dir)
        let comps = d == "." ? [] : d.split(separator: "/").map(String.init)
        return patterns.contains { $0.isException && $0.matcher.couldMatchBeneath(comps) }
    }
}

/// A compiled `.dockerignore` pattern.
struct PathGlob: Sendable, Equatable {
    enum Token: Sendable, Equatable {
        case literal(Unicode.Scalar)
        /// `?`: one character but `/`.
        case one
        /// `*`: any run without `/`.
        case star
        /// `**/` (or `**` inside): nothing, or anything ending in `/`.
        case folders
        /// A trailing `**` after other text: anything.
        case anything
        case set([ClosedRange<Unicode.Scalar>], negated: Bool)
    }

    enum Kind: Sendable, Equatable { case exact, prefix, suffix, glob }

    let text: String
    let kind: Kind
    let tokens: [Token]

    init(_ pattern: String) {
        text = pattern
        var toks: [Token] = []
        var kind = Kind.exact
        let s = Array(pattern.unicodeScalars)
        var i = 0
        var first = true
        while i < s.count {
            let c = s[i]
            i += 1
            defer { first = false }
            switch c {
            case "*":
                if i < s.count, s[i] == "*" {
                    i += 1
                    if i < s.count, s[i] == "/" { i += 1 }
                    if i == s.count {
                        if kind == .exact { kind = .prefix } else { toks.append(.anything); kind = .glob }
                    } else {
                        toks.append(.folders)
                        kind = .glob
                    }
                    if first { kind = .suffix }
                } else {
                    toks.append(.star)
                    kind = .glob
                }
            case "?":
                toks.append(.one)
                kind = .glob
            case "\\":
                // An escaped character matches itself (`\*.txt` is the file `*.txt`).
                if i < s.count { toks.append(.literal(s[i])); i += 1 } else { toks.append(.literal("\\")) }
                kind = .glob
            case "[":
                var negated = false
                if i < s.count, s[i] == "^" { negated = true; i += 1 }
                var ranges: [ClosedRange<Unicode.Scalar>] = []
                var closed = false
                while i < s.count {
                    var a = s[i]
                    if a == "]" && !ranges.isEmpty { i += 1; closed = true; break }
                    if a == "\\", i + 1 < s.count { i += 1; a = s[i] }
                    i += 1
                    var b = a
                    if i + 1 < s.count, s[i] == "-", s[i + 1] != "]" {
                        b = s[i + 1]
                        if b == "\\", i + 2 < s.count { b = s[i + 2]; i += 1 }
                        i += 2
                    }
                    ranges.append(a <= b ? a...b : b...a)
                }
                // An unclosed class matches nothing, as an invalid regexp matches nothing.
                toks.append(closed ? .set(ranges, negated: negated) : .set([], negated: false))
                kind = .glob
            default:
                toks.append(.literal(c))
            }
        }
        self.kind = kind
        self.tokens = toks
    }

    func matches(_ path: String) -> Bool {
        switch kind {
        case .exact: return path == text
        case .prefix: return path.hasPrefix(String(text.dropLast(2)))
        case .suffix:
            let suffix = String(text.dropFirst(2))
            if path.hasSuffix(suffix) { return true }
            return suffix.hasPrefix("/") && path == String(suffix.dropFirst())
        case .glob:
            return PathGlob.match(tokens, Array(path.unicodeScalars))
        }
    }

    /// Runs the tokens as an NFA over the path (no recursion): state `t` waits at token
    /// `t`; a `**/` token has a second state, "inside the folders", at `m + 1 + t`.
    static func match(_ tokens: [Token], _ s: [Unicode.Scalar]) -> Bool {
        let m = tokens.count
        func close(_ set: inout [Bool]) {
            for t in 0..<m where set[t] {
                switch tokens[t] {
                case .star, .folders, .anything: set[t + 1] = true
                default: break
                }
            }
        }
        var cur = [Bool](repeating: false, count: 2 * m + 2)
        cur[0] = true
        close(&cur)
        for c in s {
            var next = [Bool](repeating: false, count: 2 * m + 2)
            var alive = false
            for t in 0..<m {
                if cur[t] {
                    switch tokens[t] {
                    case .literal(let l): if c == l { next[t + 1] = true; alive = true }
                    case .one: if c != "/" { next[t + 1] = true; alive = true }
                    case .star: if c != "/" { next[t] = true; alive = true }
                    case .anything: next[t] = true; alive = true
                    case .folders:
                        next[m + 1 + t] = true
                        if c == "/" { next[t + 1] = true }
                        alive = true
                    case .set(let ranges, let negated):
                        if ranges.contains(where: { $0.contains(c) }) != negated { next[t + 1] = true; alive = true }
                    }
                }
                if cur[m + 1 + t] {
                    next[m + 1 + t] = true
                    if c == "/" { next[t + 1] = true }
                    alive = true
                }
            }
            guard alive else { return false }
            close(&next)
            cur = next
        }
        return cur[m]
    }

    /// Whether something strictly beneath the folder `comps` could match: true when the
    /// pattern's text up to the folder's depth is compatible component by component, or a
    /// `**` reaches there.
    func couldMatchBeneath(_ comps: [String]) -> Bool {
        if kind == .suffix { return true }
        let patternComps = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        for (i, dirComp) in comps.enumerated() {
            guard i < patternComps.count else { return false }
            let pc = patternComps[i]
            if pc.contains("**") { return true }
            if !PathGlob(pc).matches(dirComp) { return false }
        }
        return patternComps.count > comps.count
    }
}
