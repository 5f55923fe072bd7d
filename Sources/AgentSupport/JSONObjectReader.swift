import FoundationEssentials
import Glibc

/// Reads typed fields out of a JSON object while remembering where it is, so every error
/// names the JSON path (`syscalls[3].args[0].op`) and which keys were not recognised.
package struct JSONObjectReader {
    package let fields: [String: JSONValue]
    /// The path of this object, e.g. `syscalls[3]`; empty for the document root.
    package let path: String
    package let fail: @Sendable (_ path: String, _ problem: String) -> any Error

    package init(_ value: JSONValue, path: String, fail: @escaping @Sendable (String, String) -> any Error) throws {
        guard case .object(let fields) = value else {
            throw fail(path.isEmpty ? "(document)" : path, "expected an object, found \(value.typeName)")
        }
        self.fields = fields
        self.path = path
        self.fail = fail
    }

    package func childPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// Throws naming the first key (alphabetically, for stable messages) that is not `known`.
    package func rejectUnknownKeys(_ known: Set<String>) throws {
        if let unknown = fields.keys.filter({ !known.contains($0) }).sorted().first {
            throw fail(childPath(unknown), "unknown key (expected one of: \(known.sorted().joined(separator: ", ")))")
        }
    }

    /// The raw value, treating JSON `null` as absent (Docker writes `"subArchitectures": null`).
    package func value(_ key: String) -> JSONValue? {
        guard let value = fields[key], value != .null else { return nil }
        return value
    }

    package func string(_ key: String) throws -> String? {
        guard let value = value(key) else { return nil }
        guard case .string(let s) = value else { throw mismatch(key, "a string", value) }
        return s
    }

    package func bool(_ key: String) throws -> Bool? {
        guard let value = value(key) else { return nil }
        guard case .bool(let b) = value else { throw mismatch(key, "a boolean", value) }
        return b
    }

    package func unsigned(_ key: String, max: UInt64 = .max) throws -> UInt64? {
        guard let value = value(key) else { return nil }
        guard case .unsigned(let n) = value else { throw mismatch(key, "a non-negative integer", value) }
        guard n <= max else { throw fail(childPath(key), "\(n) is larger than \(max)") }
        return n
    }

    package func number(_ key: String) throws -> Double? {
        guard let value = value(key) else { return nil }
        switch value {
        case .unsigned(let n): return Double(n)
        case .signed(let n): return Double(n)
        case .double(let d): return d
        default: throw mismatch(key, "a number", value)
        }
    }

    package func strings(_ key: String) throws -> [String]? {
        guard let items = try array(key) else { return nil }
        return try items.enumerated().map { index, item in
            guard case .string(let s) = item else {
                throw fail("\(childPath(key))[\(index)]", "expected a string, found \(item.typeName)")
            }
            return s
        }
    }

    package func array(_ key: String) throws -> [JSONValue]? {
        guard let value = value(key) else { return nil }
        guard case .array(let items) = value else { throw mismatch(key, "an array", value) }
        return items
    }

    package func object(_ key: String) throws -> JSONObjectReader? {
        guard let value = value(key) else { return nil }
        return try JSONObjectReader(value, path: childPath(key), fail: fail)
    }

    private func mismatch(_ key: String, _ expected: String, _ found: JSONValue) -> any Error {
        fail(childPath(key), "expected \(expected), found \(found.typeName)")
    }
}
