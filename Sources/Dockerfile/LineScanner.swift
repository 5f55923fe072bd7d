/// One instruction as the line scanner found it: continuation lines joined, comments
/// dropped, heredoc bodies read; not yet typed.
struct RawInstruction {
    /// The keyword as written (`run`, `Copy`).
    var keyword: String
    /// The `--flags` before the arguments, quotes and escapes processed.
    var flags: [String]
    /// The arguments after the flags, trimmed.
    var rest: String
    /// The joined line.
    var original: String
    var startLine: Int
    var endLine: Int
    var heredocs: [Heredoc]
}

/// The parser directives at the very top of the file (`# syntax=`, `# escape=`,
/// `# check=`): each at most once, before any other line, blank or not.
struct DirectiveState {
    var done = false
    var seen: Set<String> = []
    var syntax: String?
    var check: String?
    var escape: Unicode.Scalar = "\\"

    /// Reads `line` (leading blanks stripped) as a directive; true when it was one.
    mutating func consider(_ line: Substring) throws(DockerfileError) -> Bool {
        if done { return false }
        guard line.hasPrefix("#") else { done = true; return false }
        let body = line.dropFirst().drop { $0 == " " || $0 == "\t" }
        guard let eq = body.firstIndex(of: "=") else { done = true; return false }
        let key = body[..<eq].trimmingBlanks()
        let value = body[body.index(after: eq)...].trimmingBlanks()
        guard let first = key.unicodeScalars.first, first.properties.isAlphabetic, first.isASCII,
              key.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0)) }),
              !value.isEmpty else { done = true; return false }
        let name = key.lowercased()
        guard ["syntax", "escape", "check"].contains(name) else { done = true; return false }
        guard seen.insert(name).inserted else {
            throw DockerfileError(.directive, "only one \(name) parser directive can be used")
        }
        switch name {
        case "syntax": syntax = value
        case "check": check = value
        default:
            guard value == "\\" || value == "`" else {
                throw DockerfileError(.directive, "invalid escape token '\(value)' does not match ` or \\")
            }
            escape = value.unicodeScalars.first!
        }
        return true
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces, tabs, CR and the other blanks.
    func trimmingBlanks() -> String {
        let scalars = Array(unicodeScalars)
        var a = 0, b = scalars.count
        while a < b, scalars[a].properties.isWhitespace { a += 1 }
        while b > a, scalars[b - 1].properties.isWhitespace { b -= 1 }
        return String(String.UnicodeScalarView(scalars[a..<b]))
    }

    /// The text without leading blanks.
    func trimmingLeadingBlanks() -> Substring {
        let s = Substring(self)
        return s.drop { $0.unicodeScalars.allSatisfy(\.properties.isWhitespace) }
    }
}

/// Splits a Dockerfile into raw instructions, BuildKit's way: a line ending in the escape
/// character (blanks after it allowed, a doubled escape not) continues on the next;
/// comment lines inside a continuation are dropped; empty continuation lines are skipped
/// with a warning; the leading blanks of continued lines are kept; heredoc bodies follow
/// the whole instruction.
struct LineScanner {
    private(set) var directives = DirectiveState()
    private(set) var warnings: [DockerfileWarning] = []
    private let lines: [Substring]
    private var index = 0

    /// A scanner of `text`; `escape` is preset for one-instruction texts (ONBUILD triggers),
    /// whose directives are not read.
    init(text: String, escape: Unicode.Scalar? = nil) {
        if let escape {
            directives.escape = escape
            directives.done = true
        }
        var t = Substring(text)
        if t.hasPrefix("\u{FEFF}") { t = t.dropFirst() }
        // Lines keep their "\n" (heredoc bodies need it); a last line without one is kept.
        var out: [Substring] = []
        var start = t.startIndex
        var i = t.startIndex
        while i < t.endIndex {
            if t[i] == "\n" || t[i] == "\r\n" {
                let next = t.index(after: i)
                out.append(t[start..<next])
                start = next
            }
            i = t.index(after: i)
        }
        if start < t.endIndex { out.append(t[start...]) }
        lines = out
    }

    var lineCount: Int { lines.count }

    static func trimNewline(_ s: Substring) -> Substring {
        var s = s
        while let last = s.last, last == "\n" || last == "\r" || last == "\r\n" { s = s.dropLast() }
        return s
    }

    static func isComment(_ s: Substring) -> Bool {
        s.trimmingLeadingBlanks().hasPrefix("#")
    }

    /// Strips a continuation escape at the end; false when the line ends the instruction.
    func trimContinuation(_ line: Substring) -> (Substring, Bool) {
        let esc = Character(directives.escape)
        var s = line
        while let last = s.last, last == " " || last == "\t" { s = s.dropLast() }
        guard s.last == esc else { return (line, true) }
        let without = s.dropLast()
        if let before = without.last, before == esc { return (line, true) }
        return (without, false)
    }

    /// The next instruction, nil at the end of the file.
    mutating func next() throws(DockerfileError) -> RawInstruction? {
        while index < lines.count {
            let raw = lines[index]
            index += 1
            let lineNo = index
            var token = LineScanner.trimNewline(raw).trimmingLeadingBlanks()
            do {
                if try directives.consider(token) { continue }
            } catch {
                throw error.located(file: "", line: lineNo, instruction: nil)
            }
            if LineScanner.isComment(token) { token = "" }
            var (first, ended) = trimContinuation(token)
            if ended && first.isEmpty { continue }
            var joined = String(first)
            var sawEmptyContinuation = false
            while !ended && index < lines.count {
                let rawNext = lines[index]
                index += 1
                directives.done = true
                if LineScanner.isComment(rawNext) { continue }
                let body = LineScanner.trimNewline(rawNext)
                if body.trimmingLeadingBlanks().isEmpty {
                    sawEmptyContinuation = true
                    continue
                }
                let (part, end) = trimContinuation(body)
                joined += part
                ended = end
            }
            if sawEmptyContinuation {
                warnings.append(DockerfileWarning(line: index, message: "Empty continuation line found in: \(joined)"))
            }
            var inst = LineScanner.split(joined, startLine: lineNo, escape: directives.escape)
            inst.endLine = index
            if LineScanner.mayHaveHeredocs(inst), joined.contains("<<") {
                inst.heredocs = try readHeredocs(line: joined, startLine: lineNo)
                inst.endLine = index
            }
            return inst
        }
        return nil
    }

    /// Keyword, flags and arguments of a joined line.
    static func split(_ line: String, startLine: Int, escape: Unicode.Scalar) -> RawInstruction {
        let trimmed = line.trimmingBlanks()
        let scalars = Array(trimmed.unicodeScalars)
        var k = 0
        while k < scalars.count, !WordParsers.isSplitBlank(scalars[k]) { k += 1 }
        let keyword = String(String.UnicodeScalarView(scalars[..<k]))
        var j = k
        while j < scalars.count, WordParsers.isSplitBlank(scalars[j]) { j += 1 }
        let remainder = String(String.UnicodeScalarView(scalars[j...]))
        let (rest, flags) = WordParsers.extractFlags(remainder, escape: escape)
        return RawInstruction(keyword: keyword, flags: flags, rest: rest.trimmingBlanks(), original: trimmed,
                              startLine: startLine, endLine: startLine, heredocs: [])
    }

    /// RUN, COPY and ADD in shell form (and ONBUILD of one) can take heredocs.
    static func mayHaveHeredocs(_ inst: RawInstruction) -> Bool {
        var keyword = inst.keyword.uppercased()
        var rest = inst.rest
        if keyword == "ONBUILD" {
            let parts = rest.split(maxSplits: 1, whereSeparator: { $0 == " " || $0 == "\t" })
            keyword = parts.first.map { $0.uppercased() } ?? ""
            rest = parts.count > 1 ? String(parts[1]) : ""
        }
        guard ["RUN", "COPY", "ADD"].contains(keyword) else { return false }
        return (try? WordParsers.parseJSONArray(rest)) ?? nil == nil
    }

    /// Reads the body of each heredoc the line opens, in order.
    mutating func readHeredocs(line: String, startLine: Int) throws(DockerfileError) -> [Heredoc] {
        var docs: [Heredoc] = []
        for marker in HeredocMarker.all(in: line) {
            var content = ""
            var terminated = false
            while index < lines.count {
                let raw = lines[index]
                index += 1
                var candidate = LineScanner.trimNewline(raw)
                if marker.stripsTabs { candidate = candidate.drop { $0 == "\t" } }
                if candidate == marker.name[...] {
                    terminated = true
                    break
                }
                content += raw
                if content.utf8.count > DockerfileLimits.maxBytes {
                    throw DockerfileError(.tooLarge, "heredoc is larger than \(DockerfileLimits.maxBytes) bytes", line: startLine)
                }
            }
            if !terminated {
                throw DockerfileError(.heredoc, "unterminated heredoc \"\(marker.name)\"", line: startLine)
            }
            docs.append(Heredoc(name: marker.name, content: content, expands: marker.expands,
                                stripsTabs: marker.stripsTabs, fileDescriptor: marker.fileDescriptor))
        }
        return docs
    }
}
