/// Variable expansion as BuildKit's frontend does it (its shell/lex.go), not as a shell
/// does: `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`, `${VAR+word}`,
/// `${VAR:?msg}`, `${VAR?msg}`, `${VAR#pat}`, `${VAR##pat}`, `${VAR%pat}`, `${VAR%%pat}`,
/// `${VAR/pat/repl}`, `${VAR//pat/repl}`; single quotes literal, double quotes expand,
/// the escape character quotes the next character, an unset variable is empty.
///
/// The result is bounded (`DockerfileLimits.maxExpansionBytes`) so a hostile Dockerfile
/// cannot grow a word without limit by doubling a variable with `ENV`.
public struct ShellLex: Sendable {
    /// The escape character (`\`, or the one `# escape=` chose).
    public var escape: Character
    /// Keep quote characters in the result (the heredoc detector uses this).
    public var rawQuotes = false
    /// Keep escape characters in the result.
    public var rawEscapes = false
    /// Treat quotes as ordinary characters (expansion of heredoc bodies).
    public var skipProcessQuotes = false
    /// Leave `$NAME` of an unset variable as written.
    public var skipUnsetVariables = false

    /// A lexer for `escape`.
    public init(escape: Character = "\\") {
        self.escape = escape
    }

    /// Expands `word` as one word (whitespace kept): what ENV, LABEL, WORKDIR, COPY and the
    /// other expanding instructions do with each of their words.
    public func expand(_ word: String, _ variables: Variables) throws(ExpansionError) -> String {
        try run(word, variables).result
    }

    /// Expands `word` and splits the result into words at unquoted whitespace (whitespace
    /// that came from a variable's value splits too, as BuildKit does).
    public func expandWords(_ word: String, _ variables: Variables) throws(ExpansionError) -> [String] {
        try run(word, variables).words
    }

    /// Expands `word` and reports which variable names it looked up and found set
    /// (`matched`) or unset (`unmatched`), for the unused build-arg warning.
    public func expandTracking(_ word: String, _ variables: Variables) throws(ExpansionError)
        -> (result: String, matched: Set<String>, unmatched: Set<String>) {
        let r = try run(word, variables)
        return (r.result, r.matched, r.unmatched)
    }

    private func run(_ word: String, _ variables: Variables) throws(ExpansionError) -> LexState.Output {
        var state = LexState(lex: self, text: word, variables: variables)
        do {
            return try state.process()
        } catch {
            throw ExpansionError(message: "failed to process \"\(word)\": \(error.message)")
        }
    }
}

/// An expansion that failed: unterminated quote, bad substitution, `${VAR?message}`.
public struct ExpansionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What failed, BuildKit's wording (`failed to process "${X": syntax error: missing '}'`).
    public var message: String
    public var description: String { message }
}

/// The words of one expansion as they are built: characters from variables split at
/// whitespace, quoted and escaped characters never do.
private struct WordCollector {
    var buffer = ""
    var words: [String] = []
    var inWord = false

    mutating func addChar(_ ch: Unicode.Scalar) {
        if ch.properties.isWhitespace {
            if inWord && !buffer.isEmpty {
                words.append(buffer)
                buffer = ""
                inWord = false
            }
        } else {
            addRawChar(ch)
        }
    }

    mutating func addRawChar(_ ch: Unicode.Scalar) {
        buffer.unicodeScalars.append(ch)
        inWord = true
    }

    mutating func addString(_ s: String) {
        for ch in s.unicodeScalars { addChar(ch) }
    }

    mutating func addRawString(_ s: String) {
        buffer += s
        inWord = true
    }

    mutating func finish() -> [String] {
        if !buffer.isEmpty {
            words.append(buffer)
            buffer = ""
            inWord = false
        }
        return words
    }
}

struct LexFailure: Error {
    var message: String
}

/// One run of the lexer over one word.
private struct LexState {
    struct Output {
        var result: String
        var words: [String]
        var matched: Set<String>
        var unmatched: Set<String>
    }

    let lex: ShellLex
    let chars: [Unicode.Scalar]
    let escape: Unicode.Scalar
    let variables: Variables
    var pos = 0
    var rawEscapes: Bool
    var depth = 0
    var matched: Set<String> = []
    var unmatched: Set<String> = []

    init(lex: ShellLex, text: String, variables: Variables) {
        self.lex = lex
        self.chars = Array(text.unicodeScalars)
        self.escape = lex.escape.unicodeScalars.first ?? "\\"
        self.variables = variables
        self.rawEscapes = lex.rawEscapes
    }

    func peek() -> Unicode.Scalar? { pos < chars.count ? chars[pos] : nil }

    mutating func next() -> Unicode.Scalar? {
        guard pos < chars.count else { return nil }
        pos += 1
        return chars[pos - 1]
    }

    mutating func process() throws(LexFailure) -> Output {
        let (result, words) = try processStopOn(nil, rawEscapes: lex.rawEscapes)
        return Output(result: result, words: words, matched: matched, unmatched: unmatched)
    }

    static func checkSize(_ s: String) throws(LexFailure) {
        if s.utf8.count > DockerfileLimits.maxExpansionBytes {
            throw LexFailure(message: "the expansion is longer than \(DockerfileLimits.maxExpansionBytes) bytes")
        }
    }

    /// Reads up to `stop` (consumed) or the end; nil `stop` reads to the end.
    mutating func processStopOn(_ stop: Unicode.Scalar?, rawEscapes raw: Bool) throws(LexFailure) -> (String, [String]) {
        var result = ""
        var words = WordCollector()
        let saved = rawEscapes
        rawEscapes = raw
        defer { rawEscapes = saved }
        while let ch = peek() {
            if let stop, ch == stop {
                pos += 1
                return (result, words.finish())
            }
            if ch == "$" {
                let tmp = try processDollar()
                result += tmp
                words.addString(tmp)
            } else if ch == "<" {
                let tmp = processPossibleHeredoc()
                result += tmp
                words.addRawString(tmp)
            } else if !lex.skipProcessQuotes && ch == "'" {
                let tmp = try processSingleQuote()
                result += tmp
                words.addRawString(tmp)
            } else if !lex.skipProcessQuotes && ch == "\"" {
                let tmp = try processDoubleQuote()
                result += tmp
                words.addRawString(tmp)
            } else {
                var c = next()!
                if c == escape {
                    if rawEscapes {
                        words.addRawChar(c)
                        result.unicodeScalars.append(c)
                    }
                    guard let escaped = next() else { break }
                    c = escaped
                    words.addRawChar(c)
                } else {
                    words.addChar(c)
                }
                result.unicodeScalars.append(c)
            }
            try LexState.checkSize(result)
        }
        if let stop {
            throw LexFailure(message: "unexpected end of statement while looking for matching \(stop)")
        }
        return (result, words.finish())
    }

    mutating func processSingleQuote() throws(LexFailure) -> String {
        var result = ""
        let open = next()!
        if lex.rawQuotes { result.unicodeScalars.append(open) }
        while true {
            guard let ch = next() else {
                throw LexFailure(message: "unexpected end of statement while looking for matching single-quote")
            }
            if ch == "'" {
                if lex.rawQuotes { result.unicodeScalars.append(ch) }
                return result
            }
            result.unicodeScalars.append(ch)
        }
    }

    mutating func processDoubleQuote() throws(LexFailure) -> String {
        var result = ""
        let open = next()!
        if lex.rawQuotes { result.unicodeScalars.append(open) }
        while true {
            guard let p = peek() else {
                throw LexFailure(message: "unexpected end of statement while looking for matching double-quote")
            }
            if p == "\"" {
                let c = next()!
                if lex.rawQuotes { result.unicodeScalars.append(c) }
                return result
            } else if p == "$" {
                result += try processDollar()
            } else {
                var c = next()!
                if c == escape {
                    if rawEscapes { result.unicodeScalars.append(c) }
                    guard let after = peek() else { continue }
                    // Inside double quotes the escape only quotes `"`, `$` and itself.
                    if after == "\"" || after == "$" || after == escape { c = next()! }
                }
                result.unicodeScalars.append(c)
            }
            try LexState.checkSize(result)
        }
    }

    mutating func lookup(_ name: String) -> String? {
        if let v = variables[name] {
            matched.insert(name)
            return v
        }
        unmatched.insert(name)
        return nil
    }

    mutating func processDollar() throws(LexFailure) -> String {
        pos += 1  // $
        guard peek() == "{" else {
            let name = processName()
            if name.isEmpty { return "$" }
            let value = lookup(name)
            if value == nil && lex.skipUnsetVariables { return "$" + name }
            return value ?? ""
        }
        pos += 1  // {
        switch peek() {
        case nil: throw LexFailure(message: "syntax error: missing '}'")
        case "{", "}", ":": throw LexFailure(message: "syntax error: bad substitution")
        default: break
        }
        depth += 1
        defer { depth -= 1 }
        if depth > DockerfileLimits.maxExpansionDepth {
            throw LexFailure(message: "substitutions nested deeper than \(DockerfileLimits.maxExpansionDepth)")
        }
        let name = processName()
        var op = next()
        var ops = op.map { String($0) } ?? ""
        switch op {
        case nil:
            throw LexFailure(message: "syntax error: missing '}'")
        case "}":
            let value = lookup(name)
            if value == nil && lex.skipUnsetVariables { return "${\(name)}" }
            return value ?? ""
        case ":", "+", "-", "?", "#", "%":
            var nullIsUnset = false
            if op == ":" {
                nullIsUnset = true
                op = next()
                ops += op.map { String($0) } ?? ""
            }
            let patternOp = op == "#" || op == "%"
            if nullIsUnset && patternOp {
                throw LexFailure(message: "unsupported modifier (\(ops)) in substitution")
            }
            var word: String
            do {
                (word, _) = try processStopOn("}", rawEscapes: patternOp)
            } catch {
                if peek() == nil { throw LexFailure(message: "syntax error: missing '}'") }
                throw error
            }
            let value = lookup(name)
            if lex.skipUnsetVariables && value == nil { return "${\(name)\(ops)\(word)}" }
            switch op {
            case "-":
                if value == nil || (nullIsUnset && value == "") { return word }
                return value!
            case "+":
                if value == nil || (nullIsUnset && value == "") { return "" }
                return word
            case "?":
                guard let value else {
                    throw LexFailure(message: "\(name): \(word.isEmpty ? "is not allowed to be unset" : word)")
                }
                if nullIsUnset && value.isEmpty {
                    throw LexFailure(message: "\(name): \(word.isEmpty ? "is not allowed to be empty" : word)")
                }
                return value
            case "#", "%":
                var pattern = word
                var greedy = false
                if let first = pattern.unicodeScalars.first, first == op {
                    greedy = true
                    pattern.unicodeScalars.removeFirst()
                }
                let glob = try ShellPattern(pattern)
                return op == "#" ? glob.trimPrefix(value ?? "", greedy: greedy)
                                 : glob.trimSuffix(value ?? "", greedy: greedy)
            default:
                throw LexFailure(message: "unsupported modifier (\(ops)) in substitution")
            }
        case "/":
            let all = peek() == "/"
            if all { pos += 1 }
            let pattern: String
            let replacement: String
            do {
                (pattern, _) = try processStopOn("/", rawEscapes: true)
            } catch {
                if peek() == nil { throw LexFailure(message: "syntax error: missing '/' in ${}") }
                throw error
            }
            do {
                (replacement, _) = try processStopOn("}", rawEscapes: true)
            } catch {
                if peek() == nil { throw LexFailure(message: "syntax error: missing '}'") }
                throw error
            }
            let value = lookup(name)
            if lex.skipUnsetVariables && value == nil { return "${\(name)/\(pattern)/\(replacement)}" }
            let glob = try ShellPattern(pattern)
            let out = try glob.replace(in: value ?? "", with: replacement, all: all)
            try LexState.checkSize(out)
            return out
        default:
            throw LexFailure(message: "unsupported modifier (\(ops)) in substitution")
        }
    }

    mutating func processName() -> String {
        var name = ""
        while let ch = peek() {
            if name.isEmpty && ch.properties.numericType == .decimal {
                while let d = peek(), d.properties.numericType == .decimal {
                    name.unicodeScalars.append(d)
                    pos += 1
                }
                return name
            }
            if name.isEmpty && "@*#?-$!0".unicodeScalars.contains(ch) {
                pos += 1
                return String(ch)
            }
            let isWordChar = ch.properties.isAlphabetic || ch.properties.numericType == .decimal || ch == "_"
            if !isWordChar { break }
            name.unicodeScalars.append(ch)
            pos += 1
        }
        return name
    }

    /// `<<` and the blanks after it stay one word with the delimiter that follows, so
    /// `<< EOF` is found as one heredoc marker.
    mutating func processPossibleHeredoc() -> String {
        pos += 1
        guard peek() == "<" else { return "<" }
        pos += 1
        var out = "<<"
        while let ch = peek(), ch == " " || ch == "\t" || ch == "\r" {
            out.unicodeScalars.append(ch)
            pos += 1
        }
        return out
    }
}
