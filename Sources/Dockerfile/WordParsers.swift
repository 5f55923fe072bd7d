import AgentSupport

/// The word-level readers of BuildKit's parser (its line_parsers.go and split_command.go):
/// builder flags, quote-aware words for ENV/LABEL/ARG, JSON arrays, blank-split lists.
enum WordParsers {
    /// The blanks `FROM a  b` and other whitespace-split lists split on: space, tab, VT,
    /// FF, CR (not newline, which never survives the line scanner).
    static func isSplitBlank(_ c: Unicode.Scalar) -> Bool {
        c == " " || c == "\t" || c == "\u{0B}" || c == "\u{0C}" || c == "\r"
    }

    /// Splits at runs of blanks; the empty string gives no words.
    static func splitBlanks(_ s: String) -> [String] {
        if s.isEmpty { return [] }
        var out: [String] = []
        var cur = String.UnicodeScalarView()
        var pendingSplit = false
        for c in s.unicodeScalars {
            if isSplitBlank(c) {
                pendingSplit = true
            } else {
                if pendingSplit { out.append(String(cur)); cur = .init(); pendingSplit = false }
                cur.append(c)
            }
        }
        // A trailing run of blanks still ends the last word, as Go's regexp split does.
        out.append(String(cur))
        if pendingSplit { out.append("") }
        return out
    }

    /// Leading `--name[=value]` words, then the rest. Quotes group, the escape character
    /// quotes one character; a bare `--` ends the flags.
    static func extractFlags(_ line: String, escape: Unicode.Scalar) -> (rest: String, flags: [String]) {
        let s = Array(line.unicodeScalars)
        var words: [String] = []
        var pos = 0
        while true {
            while pos < s.count, s[pos].properties.isWhitespace { pos += 1 }
            if pos == s.count { return ("", words) }
            guard s[pos] == "-", pos + 1 < s.count, s[pos + 1] == "-" else {
                return (String(String.UnicodeScalarView(s[pos...])), words)
            }
            var word = String.UnicodeScalarView()
            var blankOK = false
            var quote: Unicode.Scalar?
            while pos < s.count {
                let ch = s[pos]
                if let q = quote {
                    if ch == q { quote = nil; pos += 1; continue }
                    if ch == escape {
                        if pos + 1 == s.count { quote = nil; pos += 1; continue }
                        pos += 1
                    }
                    word.append(s[pos]); pos += 1
                    continue
                }
                if ch.properties.isWhitespace { break }
                if ch == "'" || ch == "\"" { quote = ch; blankOK = true; pos += 1; continue }
                if ch == escape {
                    if pos + 1 == s.count { pos += 1; continue }
                    pos += 1
                }
                word.append(s[pos]); pos += 1
            }
            let w = String(word)
            if w == "--" { return (String(String.UnicodeScalarView(s[pos...])), words) }
            if blankOK || !w.isEmpty { words.append(w) }
        }
    }

    /// Quote-aware words (quotes and escapes kept for the expander), as ENV, LABEL and ARG
    /// read their arguments.
    static func parseWords(_ rest: String, escape: Unicode.Scalar) -> [String] {
        let s = Array(rest.unicodeScalars)
        var words: [String] = []
        var word = String.UnicodeScalarView()
        var inWord = false
        var blankOK = false
        var quote: Unicode.Scalar?
        var pos = 0
        func finish() {
            if blankOK || !word.isEmpty { words.append(String(word)) }
            word = .init(); blankOK = false; inWord = false
        }
        while pos < s.count {
            let ch = s[pos]
            if let q = quote {
                if ch == q { quote = nil }
                if ch == escape && q != "'" {
                    if pos + 1 == s.count { quote = nil; pos += 1; continue }
                    word.append(ch)
                    pos += 1
                }
                word.append(s[pos]); pos += 1
                continue
            }
            if !inWord {
                if ch.properties.isWhitespace { pos += 1; continue }
                inWord = true
            }
            if ch.properties.isWhitespace { finish(); pos += 1; continue }
            if ch == "'" || ch == "\"" { quote = ch; blankOK = true }
            if ch == escape {
                if pos + 1 == s.count { pos += 1; continue }
                word.append(ch)
                pos += 1
            }
            word.append(s[pos]); pos += 1
        }
        if inWord || quote != nil { finish() }
        return words
    }

    /// An array of strings when `rest` is a valid JSON array of strings; nil when it is no
    /// JSON array at all (the shell form applies); throws when it is a JSON array holding
    /// something other than strings.
    static func parseJSONArray(_ rest: String) throws(DockerfileError) -> [String]? {
        let t = rest.trimmingLeadingBlanks()
        guard t.hasPrefix("[") else { return nil }
        guard let value = try? JSONValue.parse(Array(t.utf8)), case .array(let items) = value else { return nil }
        var out: [String] = []
        for item in items {
            guard case .string(let s) = item else {
                throw DockerfileError(.arguments, "when using JSON array syntax, arrays must be comprised of strings only")
            }
            out.append(s)
        }
        return out
    }
}

/// A `<<EOF` marker: `[n]<<[-]WORD` where WORD may be quoted (`"EOF"`, `'EOF'`), which
/// turns expansion of the body off.
struct HeredocMarker: Equatable {
    var name: String
    var expands: Bool
    var stripsTabs: Bool
    var fileDescriptor: Int

    /// The marker `word` is, or nil (`<<` alone, `<<a b`, `a<<b`).
    static func parse(_ word: String) -> HeredocMarker? {
        let s = Array(word.unicodeScalars)
        var i = 0
        while i < s.count, ("0"..."9").contains(s[i]) { i += 1 }
        let fd = Int(String(String.UnicodeScalarView(s[..<i]))) ?? 0
        guard i + 1 < s.count, s[i] == "<", s[i + 1] == "<" else { return nil }
        i += 2
        var strip = false
        if i < s.count, s[i] == "-" { strip = true; i += 1 }
        while i < s.count, s[i].properties.isWhitespace { i += 1 }
        let rest = String(String.UnicodeScalarView(s[i...]))
        guard !rest.isEmpty, !rest.contains("<") else { return nil }
        var lex = ShellLex(escape: "\\")
        lex.skipUnsetVariables = true
        guard let words = try? lex.expandWords(rest, Variables()), words.count == 1 else { return nil }
        lex.rawQuotes = true
        guard let raw = try? lex.expandWords(rest, Variables()), raw.count == 1 else { return nil }
        func quotes(_ w: String) -> Int { w.unicodeScalars.filter { $0 == "'" || $0 == "\"" }.count }
        return HeredocMarker(name: words[0], expands: quotes(words[0]) == quotes(raw[0]),
                             stripsTabs: strip, fileDescriptor: fd)
    }

    /// Every marker in an instruction line, in order.
    static func all(in line: String) -> [HeredocMarker] {
        var lex = ShellLex(escape: "\\")
        lex.rawQuotes = true
        lex.rawEscapes = true
        lex.skipUnsetVariables = true
        let words = (try? lex.expandWords(line, Variables())) ?? []
        return words.compactMap(parse)
    }
}
