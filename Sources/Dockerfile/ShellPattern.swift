/// The shell patterns of `${VAR#pat}`, `${VAR%pat}` and `${VAR/pat/repl}`: `*` any run,
/// `?` one character, `\*`, `\?`, `\\` literal; everything else matches itself.
///
/// Matching runs the pattern as a small NFA over the value (no recursion, no regex
/// engine), so a hostile pattern on a long value costs time linear in the value for `#`
/// and `%`; `/` and `//` try each start and are held to a step budget.
struct ShellPattern {
    enum Token: Equatable {
        case literal(Unicode.Scalar)
        case any
        case star
    }

    let tokens: [Token]

    /// The most NFA steps one `${VAR/pat/repl}` may take before it is refused.
    static let stepBudget = 4_000_000

    init(_ pattern: String) throws(LexFailure) {
        var out: [Token] = []
        let s = Array(pattern.unicodeScalars)
        var i = 0
        while i < s.count {
            let c = s[i]
            switch c {
            case "*": out.append(.star)
            case "?": out.append(.any)
            case "\\":
                if i + 1 < s.count, s[i + 1] == "}" || s[i + 1] == "/" { break }
                guard i + 1 < s.count else {
                    throw LexFailure(message: "invalid pattern (\(pattern)) in substitution: trailing escape")
                }
                let n = s[i + 1]
                guard n == "*" || n == "?" || n == "\\" else {
                    throw LexFailure(message: "invalid pattern (\(pattern)) in substitution: invalid escape '\\\(n)'")
                }
                out.append(.literal(n))
                i += 1
            default: out.append(.literal(c))
            }
            i += 1
        }
        tokens = out
    }

    private init(tokens: [Token]) { self.tokens = tokens }

    /// The shortest or longest end `e` (from `start`) where `text[start..<e]` matches, nil
    /// when none; stops when no state is alive. `steps` counts work for the budget.
    func matchEnd(_ text: [Unicode.Scalar], from start: Int, longest: Bool, steps: inout Int) -> Int? {
        let m = tokens.count
        var cur = [Bool](repeating: false, count: m + 1)
        var next = cur
        func close(_ set: inout [Bool]) {
            for t in 0..<m where set[t] && tokens[t] == .star { set[t + 1] = true }
        }
        cur[0] = true
        close(&cur)
        var best: Int? = cur[m] ? start : nil
        if best != nil && !longest { return best }
        var p = start
        while p < text.count {
            for t in 0...m { next[t] = false }
            var alive = false
            let c = text[p]
            for t in 0..<m where cur[t] {
                steps += 1
                switch tokens[t] {
                case .literal(let l): if c == l { next[t + 1] = true; alive = true }
                case .any: next[t + 1] = true; alive = true
                case .star: next[t] = true; alive = true
                }
            }
            guard alive else { break }
            close(&next)
            p += 1
            if next[m] {
                best = p
                if !longest { return best }
            }
            swap(&cur, &next)
        }
        return best
    }

    /// `${VAR#pat}` (shortest) and `${VAR##pat}` (longest): removes a matching prefix.
    func trimPrefix(_ value: String, greedy: Bool) -> String {
        let s = Array(value.unicodeScalars)
        var steps = 0
        guard let end = matchEnd(s, from: 0, longest: greedy, steps: &steps) else { return value }
        return String(String.UnicodeScalarView(s[end...]))
    }

    /// `${VAR%pat}` (shortest) and `${VAR%%pat}` (longest): removes a matching suffix, by
    /// matching the reversed pattern against the reversed value.
    func trimSuffix(_ value: String, greedy: Bool) -> String {
        let s = Array(value.unicodeScalars.reversed())
        let reversed = ShellPattern(tokens: tokens.reversed())
        var steps = 0
        guard let end = reversed.matchEnd(s, from: 0, longest: greedy, steps: &steps) else { return value }
        return String(String.UnicodeScalarView(s[end...].reversed()))
    }

    /// `${VAR/pat/repl}` (first match) and `${VAR//pat/repl}` (every match): the leftmost
    /// longest match is replaced; an empty match replaces nothing.
    func replace(in value: String, with replacement: String, all: Bool) throws(LexFailure) -> String {
        let s = Array(value.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        var replaced = false
        var steps = 0
        var written = 0
        let replacementScalars = Array(replacement.unicodeScalars)
        while i < s.count {
            if !(replaced && !all), let end = matchEnd(s, from: i, longest: true, steps: &steps), end > i {
                out.append(contentsOf: replacementScalars)
                written += replacementScalars.count
                i = end
                replaced = true
                if written > DockerfileLimits.maxExpansionBytes { break }
                continue
            }
            if steps > ShellPattern.stepBudget {
                throw LexFailure(message: "pattern substitution is too expensive (more than \(ShellPattern.stepBudget) steps)")
            }
            out.append(s[i])
            i += 1
        }
        return String(out)
    }
}
