import FoundationEssentials
import Glibc

/// A parsed JSON document that keeps the difference between booleans, integers and other
/// numbers, so profile and policy readers can report a wrong type precisely.
///
/// Why not `JSONSerialization`: on Linux it returns `NSNumber` for both `true` and `1`,
/// and a reader that names the JSON path of a wrong type needs to tell them apart.
/// `JSONReader` makes these from text.
package enum JSONValue: Sendable, Equatable {
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

    /// Parses UTF-8 JSON text strictly; the error names line and column.
    package static func parse(_ data: some Collection<UInt8>) throws(JSONSyntaxError) -> JSONValue {
        try JSONReader.parse(data)
    }

    /// A short name of the value's type for error messages ("a string", "an array", ...).
    package var typeName: String {
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

/// For types that embed a JSON document in their own Codable form (`AgentPolicy`).
extension JSONValue: Decodable {
    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    package init(from decoder: any Decoder) throws {
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

extension JSONValue: Encodable {
    package func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let b): try container.encode(b)
        case .unsigned(let n): try container.encode(n)
        case .signed(let n): try container.encode(n)
        case .double(let d): try container.encode(d)
        case .string(let s): try container.encode(s)
        case .array(let items): try container.encode(items)
        case .object(let fields): try container.encode(fields)
        }
    }
}

extension JSONValue {
    /// Compact JSON text with object keys sorted.
    package func serialized() -> String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .unsigned(let n): return String(n)
        case .signed(let n): return String(n)
        case .double(let d): return "\(d)"
        case .string(let s): return Self.quote(s)
        case .array(let items): return "[" + items.map { $0.serialized() }.joined(separator: ",") + "]"
        case .object(let fields):
            return "{" + fields.keys.sorted().map { Self.quote($0) + ":" + fields[$0]!.serialized() }
                .joined(separator: ",") + "}"
        }
    }

    private static func quote(_ s: String) -> String { jsonQuoted(s) }
}
