import AgentSupport
import FoundationEssentials
import Glibc
import Synchronization

/// Progress of a build in BuildKit's formats. `plain`, with control characters of the
/// build's output shown escaped (`\x1b`: a RUN must not drive the operator's terminal):
///
///     #5 [builder 2/4] RUN make
///     #5 0.123 cc -c main.c
///     #5 DONE 1.2s
///     #6 [builder 3/4] COPY . /src
///     #6 CACHED
///
/// `json`: one object per line (`{"vertex":5,"name":"[builder 2/4] RUN make","event":"start"}`,
/// `"log"` with `"line"` and `"elapsed"`, `"cached"`, `"done"` with `"seconds"`, `"error"`).
/// `tty`: BuildKit's live view (`BuildTTYView`); call `finish()` when the build ends.
/// Every text passes the redactor first, before it is escaped or encoded.
public final class BuildProgress: Sendable {
    public enum Format: String, Sendable { case plain, tty, json }

    let format: Format
    let output: any ProgressOutput
    let redact: @Sendable (String) -> String
    private let counter = Mutex(0)
    private let tty: BuildTTYView?

    public init(format: Format, output: any ProgressOutput, redact: @escaping @Sendable (String) -> String) {
        self.format = format
        self.output = output
        self.redact = redact
        tty = format == .tty ? BuildTTYView(output: output) : nil
    }

    /// Ends the live view (`tty`): what is pending is printed and the cursor shown again.
    public func finish() { tty?.finish() }

    /// One step of the build (a vertex, as BuildKit calls it).
    public struct Vertex: Sendable {
        let number: Int
        let started: ContinuousClock.Instant
        let name: String
    }

    public func start(_ name: String) -> Vertex {
        let n = counter.withLock { c -> Int in c += 1; return c }
        let v = Vertex(number: n, started: .now, name: redact(name))
        if let tty { tty.start(n, v.name); return v }
        emit(v, event: "start", text: "#\(n) \(TerminalText.escaped(v.name))")
        return v
    }

    public func log(_ v: Vertex, _ line: String) {
        let t = seconds(ContinuousClock.now - v.started)
        let text = redact(line)
        if let tty { tty.log(v.number, text); return }
        emit(v, event: "log", text: "#\(v.number) \(fixed(t, 3)) \(TerminalText.escaped(text))", extra: ["line": text, "elapsed": fixed(t, 3)])
    }

    public func cached(_ v: Vertex) {
        if let tty { tty.end(v.number, "CACHED"); return }
        emit(v, event: "cached", text: "#\(v.number) CACHED")
    }

    public func done(_ v: Vertex) {
        let t = seconds(ContinuousClock.now - v.started)
        if let tty { tty.end(v.number, nil); return }
        emit(v, event: "done", text: "#\(v.number) DONE \(fixed(t, 1))s", extra: ["seconds": fixed(t, 3)])
    }

    public func failed(_ v: Vertex, _ message: String) {
        let text = redact(message)
        if let tty { tty.end(v.number, "ERROR", message: text); return }
        emit(v, event: "error", text: "#\(v.number) ERROR: \(TerminalText.escaped(text))", extra: ["message": text])
    }

    /// A line outside any vertex (warnings, the final summary).
    public func note(_ text: String) {
        let t = redact(text)
        if let tty { tty.note(t); return }
        if format == .json {
            output.write("{\"event\":\"note\",\"message\":\(jsonString(t))}\n")
        } else {
            output.write(TerminalText.escaped(t) + "\n")
        }
    }

    private func emit(_ v: Vertex, event: String, text: String, extra: [String: String] = [:]) {
        if format == .json {
            var s = "{\"vertex\":\(v.number),\"name\":\(jsonString(v.name)),\"event\":\"\(event)\""
            for k in extra.keys.sorted() {
                let value = extra[k]!
                s += ",\"\(k)\":" + (k == "seconds" || k == "elapsed" ? value : jsonString(value))
            }
            output.write(s + "}\n")
        } else {
            output.write(text + "\n")
        }
    }

    private func seconds(_ d: Duration) -> Double {
        let c = d.components
        return Double(c.seconds) + Double(c.attoseconds) / 1e18
    }

    private func fixed(_ v: Double, _ places: Int) -> String { fixedPoint(v, decimals: places) }

    private func jsonString(_ s: String) -> String { jsonQuoted(s) }
}
