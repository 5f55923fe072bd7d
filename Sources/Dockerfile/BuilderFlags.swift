/// The `--name=value` flags of one instruction, read as BuildKit's BFlags reads them:
/// every flag must be one the instruction declares, at most once unless it is a list
/// (`--mount`, `--exclude`); booleans take no value or `=true`/`=false`.
struct BuilderFlags {
    enum Kind { case string, bool, list }

    private var declared: [String: Kind] = [:]
    private(set) var strings: [String: String] = [:]
    private(set) var bools: [String: Bool] = [:]
    private(set) var lists: [String: [String]] = [:]
    let keyword: String

    init(keyword: String, _ flags: [(String, Kind)]) {
        self.keyword = keyword
        for (n, k) in flags { declared[n] = k }
    }

    /// Reads `args` (each `--name` or `--name=value`).
    mutating func parse(_ args: [String]) throws(DockerfileError) {
        var seen: Set<String> = []
        for arg in args {
            guard arg.hasPrefix("--") else {
                throw DockerfileError(.flag, "arg should start with -- : \(arg)")
            }
            let body = arg.dropFirst(2)
            let name: String
            let value: String?
            if let eq = body.firstIndex(of: "=") {
                name = String(body[..<eq])
                value = String(body[body.index(after: eq)...])
            } else {
                name = String(body)
                value = nil
            }
            guard let kind = declared[name] else {
                let known = declared.keys.sorted()
                var msg = "unknown flag: --\(name) for \(keyword)"
                if let s = Suggest.closest(name, among: known) { msg += " (did you mean --\(s)?)" }
                else if !known.isEmpty { msg += " (it takes " + known.map { "--" + $0 }.joined(separator: ", ") + ")" }
                throw DockerfileError(.flag, msg)
            }
            if kind != .list && !seen.insert(name).inserted {
                throw DockerfileError(.flag, "duplicate flag specified: --\(name)")
            }
            switch kind {
            case .bool:
                guard let value else { bools[name] = true; continue }
                switch value.lowercased() {
                case "true": bools[name] = true
                case "false": bools[name] = false
                default: throw DockerfileError(.flag, "expecting boolean value for flag --\(name), not: \(value)")
                }
            case .string:
                guard let value else { throw DockerfileError(.flag, "missing a value on flag: --\(name)") }
                strings[name] = value
            case .list:
                guard let value else { throw DockerfileError(.flag, "missing a value on flag: --\(name)") }
                lists[name, default: []].append(value)
            }
        }
    }
}

/// "Did you mean" by edit distance, as BuildKit's suggest package does.
enum Suggest {
    /// The candidate nearest to `word` (case-insensitive) if it is close enough to be a typo.
    static func closest(_ word: String, among candidates: [String]) -> String? {
        let w = Array(word.lowercased().unicodeScalars)
        // A word that starts a candidate (`--plat` for `--platform`) is a typo too.
        if w.count >= 3, let c = candidates.first(where: { $0.lowercased().hasPrefix(word.lowercased()) && $0.count > w.count }) {
            return c
        }
        var best: (String, Int)?
        for c in candidates {
            let d = distance(w, Array(c.lowercased().unicodeScalars))
            if best == nil || d < best!.1 { best = (c, d) }
        }
        guard let best else { return nil }
        // A third of the word's length, at least one edit, as close typos go.
        let allowed = max(1, min(w.count, best.0.count) / 3)
        return best.1 <= allowed && best.1 > 0 ? best.0 : (best.1 == 0 ? best.0 : nil)
    }

    /// Edit distance where swapping two neighbours is one edit (`cahce` is one from `cache`).
    static func distance(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { d[i][0] = i }
        for j in 0...b.count { d[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
                }
            }
        }
        return d[a.count][b.count]
    }
}
