import Foundation

/// A parsed JSON document that keeps the difference between booleans, integers and other
/// numbers, so profile and policy readers can report a wrong type precisely.
///
/// Why not `JSONSerialization`: on Linux it returns `NSNumber` for both `true` and `1`,
/// and a reader that names the JSON path of a wrong type needs to tell them apart.
enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// A non-negative integer.
    case unsigned(UInt64)
    /// A negative integer.
    case signed(Int64)
    /// Any other number (fractions, exponents, out-of-range integers).
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Parses UTF-8 JSON text. The error message is the decoder's, without a path.
    static func parse(_ data: Data) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: data)
    }

    /// A short name of the value's type for error messages ("a string", "an array", ...).
    var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .unsigned, .signed: "an integer"
        case .double: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

extension JSONValue: Decodable {
    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(from decoder: any Decoder) throws {
        if let object = try? decoder.container(keyedBy: AnyKey.self) {
            var fields: [String: JSONValue] = [:]
            for key in object.allKeys {
                fields[key.stringValue] = try object.decode(JSONValue.self, forKey: key)
            }
            self = .object(fields)
            return
        }
        if var array = try? decoder.unkeyedContainer() {
            var items: [JSONValue] = []
            while !array.isAtEnd { items.append(try array.decode(JSONValue.self)) }
            self = .array(items)
            return
        }
        let single = try decoder.singleValueContainer()
        if single.decodeNil() {
            self = .null
        } else if let value = try? single.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? single.decode(UInt64.self) {
            self = .unsigned(value)
        } else if let value = try? single.decode(Int64.self) {
            self = .signed(value)
        } else if let value = try? single.decode(Double.self) {
            self = .double(value)
        } else {
            self = .string(try single.decode(String.self))
        }
    }
}

/// Reads typed fields out of a JSON object while remembering where it is, so every error
/// names the JSON path (`syscalls[3].args[0].op`) and which keys were not recognised.
struct JSONObjectReader {
    let fields: [String: JSONValue]
    /// The path of this object, e.g. `syscalls[3]`; empty for the document root.
    let path: String
    let fail: @Sendable (_ path: String, _ problem: String) -> any Error

    init(_ value: JSONValue, path: String, fail: @escaping @Sendable (String, String) -> any Error) throws {
        guard case .object(let fields) = value else {
            throw fail(path.isEmpty ? "(document)" : path, "expected an object, found \(value.typeName)")
        }
        self.fields = fields
        self.path = path
        self.fail = fail
    }

    func childPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// Throws naming the first key (alphabetically, for stable messages) that is not `known`.
    func rejectUnknownKeys(_ known: Set<String>) throws {
        if let unknown = fields.keys.filter({ !known.contains($0) }).sorted().first {
            throw fail(childPath(unknown), "unknown key (expected one of: \(known.sorted().joined(separator: ", ")))")
        }
    }

    /// The raw value, treating JSON `null` as absent (Docker writes `"subArchitectures": null`).
    func value(_ key: String) -> JSONValue? {
        guard let value = fields[key], value != .null else { return nil }
        return value
    }

    func string(_ key: String) throws -> String? {
        guard let value = value(key) else { return nil }
        guard case .string(let s) = value else { throw mismatch(key, "a string", value) }
        return s
    }

    func bool(_ key: String) throws -> Bool? {
        guard let value = value(key) else { return nil }
        guard case .bool(let b) = value else { throw mismatch(key, "a boolean", value) }
        return b
    }

    func unsigned(_ key: String, max: UInt64 = .max) throws -> UInt64? {
        guard let value = value(key) else { return nil }
        guard case .unsigned(let n) = value else { throw mismatch(key, "a non-negative integer", value) }
        guard n <= max else { throw fail(childPath(key), "\(n) is larger than \(max)") }
        return n
    }

    func number(_ key: String) throws -> Double? {
        guard let value = value(key) else { return nil }
        switch value {
        case .unsigned(let n): return Double(n)
        case .signed(let n): return Double(n)
        case .double(let d): return d
        default: throw mismatch(key, "a number", value)
        }
    }

    func strings(_ key: String) throws -> [String]? {
        guard let items = try array(key) else { return nil }
        return try items.enumerated().map { index, item in
            guard case .string(let s) = item else {
                throw fail("\(childPath(key))[\(index)]", "expected a string, found \(item.typeName)")
            }
            return s
        }
    }

    func array(_ key: String) throws -> [JSONValue]? {
        guard let value = value(key) else { return nil }
        guard case .array(let items) = value else { throw mismatch(key, "an array", value) }
        return items
    }

    func object(_ key: String) throws -> JSONObjectReader? {
        guard let value = value(key) else { return nil }
        return try JSONObjectReader(value, path: childPath(key), fail: fail)
    }

    private func mismatch(_ key: String, _ expected: String, _ found: JSONValue) -> any Error {
        fail(childPath(key), "expected \(expected), found \(found.typeName)")
    }
}
