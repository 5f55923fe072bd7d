/// Bad job input. Names the file and the JSON path, e.g.
/// `job.json: steps[2]: unknown key "mount" (did you mean "mounts"?)`. Exit code 2.
public struct JobValidationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The job file as the user named it (nil for input that is not from a file, e.g. a CLI flag).
    public var file: String?
    /// JSON path such as `steps[2].mounts[0]`; empty for the document itself.
    public var path: String
    public var message: String

    public init(file: String? = nil, path: String, message: String) {
        self.file = file
        self.path = path
        self.message = message
    }

    public var description: String {
        var parts: [String] = []
        if let file { parts.append(file) }
        if !path.isEmpty { parts.append(path) }
        parts.append(message)
        return parts.joined(separator: ": ")
    }
}
