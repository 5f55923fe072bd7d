import Foundation

/// A value from `JSONSerialization` together with its JSON path, with typed accessors that
/// throw a `JobValidationError` naming that path. The parser walks the document through these
/// so that every error says where it is (`steps[0].timeout: expected ...`).
struct JobJSONNode {
    let value: Any
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
        case is NSNull: return "null"
        case is String: return "string"
        case let n as NSNumber: return Self.isBool(n) ? "boolean" : "number"
        case is [Any]: return "array"
        case is [String: Any]: return "object"
        default: return "unknown value"
        }
    }

    /// On Linux, JSONSerialization returns booleans as NSNumber with objCType "c"
    /// (and numbers `is Bool` too), so the objCType is what tells them apart.
    static func isBool(_ n: NSNumber) -> Bool {
        String(cString: n.objCType) == "c"
    }

    func typeError(_ expected: String) -> JobValidationError {
        error("expected \(expected), got \(typeName)")
    }

    // MARK: typed accessors

    func string(_ expected: String = "a string") throws -> String {
        guard let s = value as? String else { throw typeError(expected) }
        return s
    }

    /// A string that must not be empty.
    func nonEmptyString(_ expected: String = "a string") throws -> String {
        let s = try string(expected)
        if s.isEmpty { throw error("must not be empty") }
        return s
    }

    func bool() throws -> Bool {
        guard let n = value as? NSNumber, !(value is String), Self.isBool(n) else { throw typeError("true or false") }
        return n.boolValue
    }

    /// A whole number (JSON numbers with a fraction are refused).
    func integer(_ expected: String = "a whole number") throws -> Int64 {
        guard let n = value as? NSNumber, !(value is String), !Self.isBool(n) else { throw typeError(expected) }
        let d = n.doubleValue
        guard d.rounded() == d, d.isFinite else { throw error("expected \(expected), got \(n)") }
        let type = String(cString: n.objCType)
        if type == "Q" {
            // Above Int64.max: JSONSerialization keeps it as UInt64.
            guard n.uint64Value <= UInt64(Int64.max) else { throw error("\(n) is too large") }
        }
        guard d >= -9.2e18, d <= 9.2e18 else { throw error("\(n) is too large") }
        return type == "d" ? Int64(d) : n.int64Value
    }

    func array(_ expected: String = "an array") throws -> [JobJSONNode] {
        guard let a = value as? [Any] else { throw typeError(expected) }
        return a.enumerated().map { JobJSONNode(value: $0.element, path: "\(path)[\($0.offset)]", file: file) }
    }

    func object(_ expected: String = "an object") throws -> JobJSONObject {
        guard let o = value as? [String: Any] else { throw typeError(expected) }
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
    let dictionary: [String: Any]

    var path: String { node.path }
    var keys: [String] { dictionary.keys.sorted() }

    func error(_ message: String) -> JobValidationError { node.error(message) }

    /// Refuses keys outside `allowed` (reporting the alphabetically first, with a suggestion),
    /// then requires each of `required`. `allowed` is in documentation order; suggestions prefer it.
    func checkKeys(allowed: [String], required: [String] = [], explain: ((String) -> String?)? = nil) throws {
        for key in keys where !allowed.contains(key) {
            if let reason = explain?(key) { throw error(reason) }
            var message = "unknown key \(jsonQuoted(key))"
            if let guess = suggestion(for: key, among: allowed) {
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

/// `"text"` with JSON escaping, for messages.
func jsonQuoted(_ s: String) -> String { JSONText.quoted(s) }
