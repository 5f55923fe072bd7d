/// An ordered set of variables (the environment and ARGs a stage sees): the last
/// assignment of a name wins, and names keep the order they were first defined in, as an
/// image config's `Env` does.
public struct Variables: Sendable, Equatable {
    /// The names in the order they were first set.
    public private(set) var names: [String] = []
    private var values: [String: String] = [:]

    /// No variables.
    public init() {}

    /// Variables from `(name, value)` pairs, later pairs overriding earlier ones.
    public init(_ pairs: [(String, String)]) {
        for (k, v) in pairs { self[k] = v }
    }

    /// Variables from an image config's `Env` (`NAME=value` strings; a string without `=`
    /// is a name with an empty value).
    public init(environment: [String]) {
        for e in environment {
            if let eq = e.firstIndex(of: "=") {
                self[String(e[..<eq])] = String(e[e.index(after: eq)...])
            } else {
                self[e] = ""
            }
        }
    }

    /// The value of `name`, nil when unset; setting nil removes it.
    public subscript(name: String) -> String? {
        get { values[name] }
        set {
            if let newValue {
                if values.updateValue(newValue, forKey: name) == nil { names.append(name) }
            } else if values.removeValue(forKey: name) != nil {
                names.removeAll { $0 == name }
            }
        }
    }

    /// Whether `name` is set (possibly to the empty string).
    public func contains(_ name: String) -> Bool { values[name] != nil }

    /// The number of variables.
    public var count: Int { names.count }

    /// The variables as `(name, value)` in definition order.
    public var pairs: [(name: String, value: String)] { names.map { ($0, values[$0]!) } }

    /// The variables as `NAME=value` strings in definition order.
    public var environment: [String] { names.map { $0 + "=" + values[$0]! } }

    /// These variables with `other`'s set on top.
    public func merging(_ other: Variables) -> Variables {
        var out = self
        for (k, v) in other.pairs { out[k] = v }
        return out
    }
}
