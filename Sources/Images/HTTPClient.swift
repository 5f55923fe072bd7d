import CLazyLibs
import FoundationEssentials
import Glibc

/// One HTTP response: its status, its headers (names lowercased; of the last response
/// after redirects) and, for `get`, the body.
struct HTTPResponse: Sendable {
    var status: Int
    var headers: [String: String]
    var body: [UInt8]
}

/// A GET through libcurl (loaded on first use). Bodies either collected with a cap or
/// streamed to a closure that may stop the transfer.
struct HTTPClient: Sendable {
    var timeoutSeconds: Int = 600

    /// Collects the body, failing once it exceeds `maxBytes` (manifests, configs, tokens).
    func get(_ url: String, headers: [String] = [], maxBytes: Int) throws(HTTPError) -> HTTPResponse {
        var body: [UInt8] = []
        var tooLarge = false
        let r = try stream(url, headers: headers) { chunk in
            if body.count + chunk.count > maxBytes { tooLarge = true; return false }
            body.append(contentsOf: chunk)
            return true
        }
        if tooLarge { throw HTTPError(url: url, message: "the response is larger than \(maxBytes) bytes") }
        return HTTPResponse(status: r.status, headers: r.headers, body: body)
    }

    /// Streams the body of a successful (2xx) response to `sink`; error bodies are dropped.
    /// `sink` returning false aborts the transfer (reported as `aborted`, not thrown).
    /// `resumeFrom` > 0 asks for a Range; `response` sees the status and headers of the
    /// response whose body follows, before its first byte reaches `sink` (a 200 to a Range
    /// request means the whole body comes again), and may abort by returning false.
    func stream(_ url: String, headers: [String] = [], resumeFrom: Int64 = 0,
                response: @escaping (Int, [String: String]) -> Bool = { _, _ in true },
                _ sink: @escaping (UnsafeRawBufferPointer) -> Bool) throws(HTTPError) -> (status: Int, headers: [String: String], aborted: Bool) {
        let box = SinkBox(sink: sink, response: response)
        var result = agent_http_result()
        let cHeaders = headers.map { strdup($0) }
        defer { cHeaders.forEach { free($0) } }
        let rc: Int32 = withExtendedLifetime(box) {
            let ctx = Unmanaged.passUnretained(box).toOpaque()
            return cHeaders.map { UnsafePointer<CChar>($0) }.withUnsafeBufferPointer { hp in
                agent_http_get(url, hp.baseAddress, hp.count, resumeFrom, timeoutSeconds,
                               SinkBox.bodyCallback, SinkBox.headerCallback, ctx, &result)
            }
        }
        if rc != 0 && !box.aborted {
            throw HTTPError(url: url, message: result.message)
        }
        return (Int(result.status), box.headers, box.aborted)
    }
}

/// Carries the Swift sink through libcurl's C callbacks for the length of one transfer.
final class SinkBox {
    let sink: (UnsafeRawBufferPointer) -> Bool
    let response: (Int, [String: String]) -> Bool
    var headers: [String: String] = [:]
    var status = 0
    var aborted = false
    /// The response callback ran for the current response.
    private var announced = false
    /// Error bodies reach the sink too (push reads the registry's error codes).
    var keepErrorBodies = false

    /// The C callbacks of every transfer: `ctx` is this box, unretained for the transfer.
    static let bodyCallback: agent_http_sink = { data, n, ctx in
        let b = Unmanaged<SinkBox>.fromOpaque(ctx!).takeUnretainedValue()
        return b.body(UnsafeRawBufferPointer(start: data, count: n)) ? n : 0
    }
    static let headerCallback: agent_http_sink = { data, n, ctx in
        let b = Unmanaged<SinkBox>.fromOpaque(ctx!).takeUnretainedValue()
        b.header(UnsafeRawBufferPointer(start: data, count: n))
        return n
    }

    init(sink: @escaping (UnsafeRawBufferPointer) -> Bool, response: @escaping (Int, [String: String]) -> Bool = { _, _ in true }) {
        self.sink = sink
        self.response = response
    }

    func header(_ line: UnsafeRawBufferPointer) {
        let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: "\r\n")
        if text.hasPrefix("HTTP/") {
            // A new response (after a redirect or a 100 Continue): its headers replace the last.
            headers = [:]
            status = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
            announced = false
            return
        }
        guard let colon = text.firstIndex(of: ":") else { return }
        let name = text[..<colon].lowercased()
        let value = text[text.index(after: colon)...].trimmingCharacters(in: " \t")
        headers[name] = value
    }

    func body(_ chunk: UnsafeRawBufferPointer) -> Bool {
        // Only a 2xx body is content; error pages are ignored rather than written.
        guard keepErrorBodies || (status >= 200 && status < 300) else { return true }
        if !announced {
            announced = true
            if !response(status, headers) { aborted = true; return false }
        }
        if sink(chunk) { return true }
        aborted = true
        return false
    }
}

/// A transfer that did not complete: names the URL and curl's reason.
public struct HTTPError: Error, CustomStringConvertible {
    public var url: String
    public var message: String
    public var description: String { "\(url): \(message)" }
}

extension StringProtocol {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}

extension agent_http_result {
    /// curl's message for a failed transfer, or its code when it gave none.
    var message: String {
        let msg = withUnsafeBytes(of: error) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
        return msg.isEmpty ? "curl error \(curl_code)" : msg
    }
}
