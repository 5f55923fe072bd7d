/// The shell patterns of `${VAR#pat}`, `${VAR%pat}` and `${VAR/pat/repl}`: `*` any run,
/// `?` one character, `\*`, `\?`, `\\` literal; everything else matches itself. Matching
/// backtracks over at most a word's length (expansions are bounded), no regex engine.
struct ShellPattern {
    enum Token: Equatable {
        case literal(Unicode.Scalar)
        case any
        case star
    }

    let tokens: [Token]

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

    /// Whether the whole of `text[from..<to]` matches.
    func matches(_ text: [Unicode.Scalar], _ from: Int, _ to: Int) -> Bool {
        var memo = Set<Int>()  // failed (token, position) pairs, packed
        func go(_ t: Int, _ p: Int) -> Bool {
            if t == tokens.count { return p == to }
            let key = t * (to + 1) + p
            if memo.contains(key) { return false }
            let ok: Bool
            switch tokens[t] {
            case .literal(let c): ok = p < to && text[p] == c && go(t + 1, p + 1)
            case .any: ok = p < to && go(t + 1, p + 1)
            case .star: ok = go(t + 1, p) || (p < to && go(t, p + 1))
            }
            if !ok { memo.insert(key) }
            return ok
        }
        return go(0, from)
    }

    /// `${VAR#pat}` (shortest) and `${VAR##pat}` (longest): removes a matching prefix.
    func trimPrefix(_ value: String, greedy: Bool) -> String {
        let s = Array(value.unicodeScalars)
        let ends = greedy ? Array((0...s.count).reversed()) : Array(0...s.count)
        for end in ends where matches(s, 0, end) {
            return String(String.UnicodeScalarView(s[end...]))
        }
        return value
    }

    /// `${VAR%pat}` (shortest) and `${VAR%%pat}` (longest): removes a matching suffix.
    func trimSuffix(_ value: String, greedy: Bool) -> String {
        let s = Array(value.unicodeScalars)
        let starts = greedy ? Array(0...s.count) : Array((0...s.count).reversed())
        for start in starts where matches(s, start, s.count) {
            return String(String.UnicodeScalarView(s[..<start]))
        }
        return value
    }

    /// `${VAR/pat/repl}` (first match) and `${VAR//pat/repl}` (every match): the leftmost
    /// longest match is replaced; an empty match replaces nothing.
    func replace(in value: String, with replacement: String, all: Bool) -> String {
        let s = Array(value.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        var replaced = false
        while i <= s.count {
            var matchEnd: Int?
            if !(replaced && !all) {
                for end in stride(from: s.count, through: i, by: -1) where matches(s, i, end) {
                    matchEnd = end
                    break
                }
            }
            if let end = matchEnd, end > i {
                out.append(contentsOf: replacement.unicodeScalars)
                i = end
                replaced = true
                continue
            }
            if i < s.count { out.append(s[i]) }
            i += 1
        }
        return String(out)
    }
}
