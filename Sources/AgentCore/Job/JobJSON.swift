import AgentSupport
import FoundationEssentials
import Glibc

/// A parsed JSON value together with its JSON path, with typed accessors that
/// throw a `JobValidationError` naming that path. The parser walks the document through these
/// so that every error says where it is (`steps[0].timeout: expected ...`).
struct JobJSONNode {
    let value: JSONValue
    /// JSON path such as `steps[2].env.CC`; empty for the document itself.
    let path: String
    /// The job file as the user named it, for errors.
    let file: String?

    func error(_ message: String) -> JobValidationError {
        JobValidationError(file: file, path: path, message: message)
    }

    /// The JSON type name used in "expected X, got Y" messages.
    var typeName: String {
        switch value {
        case .null: return "null"
        case .string: return "string"
        case .bool: return "boolean"
        case .unsigned, .signed, .double: return "number"
        case .array: return "array"
        case .object: return "object"
        }
    }

    /// The value when it is a string.
    var stringValue: String? {
        if case .string(let s) = value { return s }
        return nil
    }

    /// The members when the value is an object.
    var objectValue: [String: JSONValue]? {
        if case .object(let o) = value { return o }
        return nil
    }

    var isArray: Bool {
        if case .array = value { return true }
        return false
    }

    func typeError(_ expected: String) -> JobValidationError {
        error("expected \(expected), got \(typeName)")
    }

    // MARK: typed accessors

    func string(_ expected: String = "a string") throws -> String {
        guard let s = stringValue else { throw typeError(expected) }
        return s
    }

    /// A string that must not be empty.
    func nonEmptyString(_ expected: String = "a string") throws -> String {
        let s = try string(expected)
        if s.isEmpty { throw error("must not be empty") }
        return s
    }

    func bool() throws -> Bool {
        guard case .bool(let b) = value else { throw typeError("true or false") }
        return b
    }

    /// A whole number (JSON numbers with a fraction are refused).
    func integer(_ expected: String = "a whole number") throws -> Int64 {
        switch value {
        case .signed(let n): return n
        case .unsigned(let n):
            guard n <= UInt64(Int64.max) else { throw error("\(n) is too large") }
            return Int64(n)
        case .double(let d):
            // `2.0` is a whole number; `2.5` is not. Out-of-range integers also arrive here.
            guard d.rounded() == d, d.isFinite else { throw error("expected \(expected), got \(d)") }
            guard d >= -9.2e18, d <= 9.2e18 else { throw error("\(d) is too large") }
            return Int64(d)
        default: throw typeError(expected)
        }
    }

    func array(_ expected: String = "an array") throws -> [JobJSONNode] {
        guard case .array(let a) = value else { throw typeError(expected) }
        return a.enumerated().map { JobJSONNode(value: $0.element, path: "\(path)[\($0.offset)]", file: file) }
    }

    func object(_ expected: String = "an object") throws -> JobJSONObject {
        guard let o = objectValue else { throw typeError(expected) }
        return JobJSONObject(node: self, dictionary: o)
    }

    /// The path of a member key: `steps[0].env.CC`, or `env["A B"]` for keys that are not identifiers.
    func childPath(_ key: String) -> String {
        let startsWithDigit = key.utf8.first.map { $0 >= 0x30 && $0 <= 0x39 } ?? true
        let plain = !startsWithDigit && key.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F || b == 0x2D
        }
        let member = plain ? key : "[\(jsonQuoted(key))]"
        if path.isEmpty { return member }
        return plain ? "\(path).\(member)" : "\(path)\(member)"
    }
}

/// A JSON object being validated: which keys are allowed, which are required.
struct JobJSONObject {
    let node: JobJSONNode
    let dictionary: [String: JSONValue]

    var path: String { node.path }
    var keys: [String] { dictionary.keys.sorted() }

    func error(_ message: String) -> JobValidationError { node.error(message) }

    /// Refuses keys outside `allowed` (reporting the alphabetically first, with a suggestion),
    /// then requires each of `required`. `allowed` is in documentation order; suggestions prefer it.
    func checkKeys(allowed: [String], required: [String] = [], explain: ((String) -> String?)? = nil) throws {
        for key in keys where !allowed.contains(key) {
            if let reason = explain?(key) { throw error(reason) }
            var message = "unknown key \(jsonQuoted(key))"
            if let guess = DidYouMean.suggestion(for: key, among: allowed) {
                message += " (did you mean \(jsonQuoted(guess))?)"
            }
            throw error(message)
        }
        for key in required where dictionary[key] == nil {
            throw error("missing required key \(jsonQuoted(key))")
        }
    }

    /// The member `key`, or nil when it is absent. JSON `null` counts as present (and is then a type error).
    subscript(key: String) -> JobJSONNode? {
        guard let v = dictionary[key] else { return nil }
        return JobJSONNode(value: v, path: node.childPath(key), file: node.file)
    }

    /// All members in key order (deterministic, for maps like `env` and `secrets`).
    var members: [(key: String, node: JobJSONNode)] {
        keys.map { ($0, JobJSONNode(value: dictionary[$0]!, path: node.childPath($0), file: node.file)) }
    }
}

/// "Did you mean" suggestions for misspelt keys and enum values, by edit distance.
enum DidYouMean {
    /// Returns the candidate closest to `word` when it is close enough to be a plausible typo:
    /// at most 1 edit for short words, 2 for words of five or more characters, and never more
    /// than half the word; or a candidate that starts with the word. Ties go to the earlier
    /// candidate, so callers list candidates in documentation order and the answer is deterministic.
    static func suggestion(for word: String, among candidates: [String]) -> String? {
        let lowered = word.lowercased()
        var best: (candidate: String, distance: Int)?
        for candidate in candidates {
            // A difference only in case or in `-` versus `_` is the likeliest typo of all.
            let normalizedWord = lowered.replacing("-", with: "_")
            let normalizedCandidate = candidate.lowercased().replacing("-", with: "_")
            if normalizedWord == normalizedCandidate { return candidate }
            // A word cut short ("root" for "rootfs") is a typo too, however many letters are missing.
            if word.count >= 3, normalizedCandidate.hasPrefix(normalizedWord) { return candidate }
            let d = DidYouMean.distance(lowered, candidate.lowercased())
            if best == nil || d < best!.distance { best = (candidate, d) }
        }
        guard let best else { return nil }
        let limit = min(word.count >= 5 ? 2 : 1, max(1, word.count / 2))
        return best.distance <= limit ? best.candidate : nil
    }

    /// Levenshtein distance with adjacent transpositions counted as one edit
    /// (optimal string alignment), over Unicode scalars.
    static func distance(_ a: String, _ b: String) -> Int {
        let x = Array(a.unicodeScalars), y = Array(b.unicodeScalars)
        if x.isEmpty { return y.count }
        if y.isEmpty { return x.count }
        // Three rolling rows: the transposition case looks two rows back.
        var prev2 = [Int](repeating: 0, count: y.count + 1)
        var prev = Array(0...y.count)
        var cur = [Int](repeating: 0, count: y.count + 1)
        for i in 1...x.count {
            cur[0] = i
            for j in 1...y.count {
                let cost = x[i - 1] == y[j - 1] ? 0 : 1
                var v = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
                if i > 1, j > 1, x[i - 1] == y[j - 2], x[i - 2] == y[j - 1] {
                    v = min(v, prev2[j - 2] + 1)
                }
                cur[j] = v
            }
            (prev2, prev, cur) = (prev, cur, prev2)
        }
        return prev[y.count]
    }
}
