/// One `--secret` flag of `agent run-job` / `agent watch`, in BuildKit's syntax:
///
///     id=mysecret,src=mysecret.txt     a file (`source=` is a synonym)
///     id=token,env=CI_TOKEN            a variable of the agent's environment
///     id=x                             variable `x` if it is set, else file `x`
///     type=env,id=x,src=NAME           BuildKit's spelling of `env=NAME`
///
/// The text is a CSV record as in BuildKit (`"src=a,b.txt"` quotes a comma). Keys are
/// case-insensitive. Unlike BuildKit, giving both `src` and `env` is an error rather than
/// a silent preference for `env`: one flag should mean one place.
public struct SecretSourceFlag: Sendable, Equatable, CustomStringConvertible {
    /// Where the value comes from.
    public enum Source: Sendable, Equatable {
        /// A file on the agent's side, as written; a relative path resolves against the
        /// agent's current directory.
        case file(String)
        /// A variable of the agent's own environment.
        case env(String)
        /// BuildKit's default: the environment variable named like the id if it is set,
        /// else the file named like the id.
        case automatic
    }

    public var id: String
    public var source: Source
    /// The flag as the user wrote it, for error messages.
    public var text: String

    public init(id: String, source: Source, text: String? = nil) {
        self.id = id
        self.source = source
        self.text = text ?? "id=\(id)"
    }

    /// Parses one flag value (the text after `--secret`). Throws `SecretError.invalidFlag`
    /// naming the flag text and what is wrong with it.
    public init(parsing text: String) throws {
        func fail(_ reason: String) -> SecretError { .invalidFlag(flag: text, reason: reason) }
        let fields: [String]
        do {
            fields = try Self.csvFields(text)
        } catch let reason as CSVFieldError {
            throw fail(reason.message)
        }
        if fields == [""] { throw fail("empty; expected id=NAME[,src=FILE|,env=VARIABLE]") }

        var id: String?
        var type: String?
        var path: String?
        var env: String?
        for field in fields {
            guard let eq = field.firstIndex(of: "=") else {
                throw fail("invalid field \(SecretError.quote(field)): must be a key=value pair")
            }
            let key = field[..<eq].lowercased()
            let value = String(field[field.index(after: eq)...])
            switch key {
            case "type":
                guard value == "file" || value == "env" else {
                    throw fail("unsupported secret type \(SecretError.quote(value)) (expected file or env)")
                }
                type = value
            case "id": id = value
            case "src", "source": path = value
            case "env": env = value
            default:
                throw fail("unexpected key \(SecretError.quote(String(field[..<eq]))) in \(SecretError.quote(field)) (expected id, src, source, env or type)")
            }
        }
        guard let id, !id.isEmpty else { throw fail("missing id=") }
        if path?.isEmpty == true { throw fail("src= is empty") }
        if env?.isEmpty == true { throw fail("env= is empty") }
        if path != nil && env != nil { throw fail("both src= and env= are given; use one") }

        switch (type, path, env) {
        case ("env", let name?, nil): source = .env(name)   // BuildKit: with type=env, src names the variable
        case ("env", nil, let name?): source = .env(name)
        case ("env", nil, nil): source = .env(id)
        case ("file", nil, .some): throw fail("type=file with env=; use src=FILE or type=env")
        case ("file", nil, nil): source = .file(id)
        case (_, let file?, _): source = .file(file)
        case (_, _, let name?): source = .env(name)
        default: source = .automatic
        }
        self.id = id
        self.text = text
    }

    public var description: String { text }

    /// Splits one CSV record the way Go's `encoding/csv` (which BuildKit uses) does:
    /// fields separated by commas, a field that starts with `"` is quoted and `""` inside
    /// it is one quote; a quote anywhere else is an error.
    static func csvFields(_ text: String) throws -> [String] {
        var fields: [String] = []
        var chars = Substring(text)
        while true {
            var field = ""
            if chars.first == "\"" {
                chars.removeFirst()
                var closed = false
                while let c = chars.popFirst() {
                    if c == "\"" {
                        if chars.first == "\"" {
                            chars.removeFirst()
                            field.append("\"")
                        } else {
                            closed = true
                            break
                        }
                    } else {
                        field.append(c)
                    }
                }
                guard closed else { throw CSVFieldError(message: "unterminated quoted field") }
                guard chars.isEmpty || chars.first == "," else {
                    throw CSVFieldError(message: "extraneous text after a quoted field")
                }
            } else {
                while let c = chars.first, c != "," {
                    if c == "\"" { throw CSVFieldError(message: "bare \" in a non-quoted field") }
                    if c == "\n" || c == "\r" { throw CSVFieldError(message: "line break in a field") }
                    field.append(c)
                    chars.removeFirst()
                }
            }
            fields.append(field)
            guard chars.popFirst() != nil else { return fields }  // consumed the comma, or the end
        }
    }

    struct CSVFieldError: Error { var message: String }
}
