import AgentSupport
import FoundationEssentials
import Glibc
import Logging

/// A swift-log handler that writes one structured line per message to stderr:
/// `text` (`2026-11-26T21:00:00.123Z info claimed job=a attempt=1`) or `json`
/// (`{"time":…,"level":"info","message":"claimed","job":"a","attempt":"1"}`).
public struct StructuredLogHandler: LogHandler {
    public enum Format: String, Sendable, CaseIterable {
        case text, json
    }

    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public let label: String
    public let format: Format
    private let sink: @Sendable (String) -> Void

    /// `sink` receives each complete line (with its newline); the default writes to stderr
    /// with one write call, so lines from concurrent tasks never interleave.
    public init(label: String, format: Format, sink: (@Sendable (String) -> Void)? = nil) {
        self.label = label
        self.format = format
        self.sink = sink ?? { line in printToStandardError(line) }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { _, new in new } }
        sink(Self.render(format: format, time: Date(), level: event.level, message: event.message.description,
                         metadata: all))
    }

    /// One line for these values (exposed for tests).
    public static func render(format: Format, time: Date, level: Logger.Level, message: String,
                              metadata: Logger.Metadata) -> String {
        let stamp = QueueJSON.format(time)
        let keys = metadata.keys.sorted()
        switch format {
        case .text:
            var line = "\(stamp) \(level) \(message)"
            for key in keys { line += " \(key)=\(quoted(flatten(metadata[key]!)))" }
            return line + "\n"
        case .json:
            var object: [String: String] = ["time": stamp, "level": level.rawValue, "message": message]
            for key in keys where object[key] == nil { object[key] = flatten(metadata[key]!) }
            // Keys sorted, as before, so lines are stable for tests and diffing.
            let members = object.keys.sorted().map { jsonQuoted($0) + ":" + jsonQuoted(object[$0]!) }
            return "{" + members.joined(separator: ",") + "}\n"
        }
    }

    private static func flatten(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let s): return s
        case .stringConvertible(let c): return c.description
        case .array(let a): return "[" + a.map(flatten).joined(separator: ",") + "]"
        case .dictionary(let d): return "{" + d.keys.sorted().map { "\($0):\(flatten(d[$0]!))" }.joined(separator: ",") + "}"
        }
    }

    /// Text values with spaces, quotes or `=` are quoted so a line splits unambiguously.
    private static func quoted(_ s: String) -> String {
        if !s.isEmpty && !s.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0.isNewline }) { return s }
        let escaped = s.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"")
            .replacing("\n", with: "\\n")
        return "\"\(escaped)\""
    }
}
