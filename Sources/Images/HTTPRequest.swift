import CLazyLibs
import FoundationEssentials
import Glibc

/// A request body: bytes in memory (manifests) or a range of a file (blobs, read with
/// pread, so a retried request sends the same bytes again).
enum HTTPBody {
    case bytes([UInt8])
    case file(fd: Int32, offset: Int64, length: Int64)
}

extension HTTPClient {
    /// Any method with an optional body; the response body (error bodies too) is collected
    /// up to `maxBytes`. Redirects are not followed (an upload is never re-sent elsewhere).
    func request(_ method: String, _ url: String, headers: [String] = [], body: HTTPBody? = nil,
                 maxBytes: Int = 1 << 20) throws(HTTPError) -> HTTPResponse {
        var collected: [UInt8] = []
        let box = SinkBox { chunk in
            if collected.count + chunk.count > maxBytes { return false }
            collected.append(contentsOf: chunk)
            return true
        }
        box.keepErrorBodies = true
        var result = agent_http_result()
        let cHeaders = headers.map { strdup($0) }
        defer { cHeaders.forEach { free($0) } }
        let memory: [UInt8] = if case .bytes(let b)? = body { b } else { [] }
        let rc: Int32 = withExtendedLifetime(box) {
            let ctx = Unmanaged.passUnretained(box).toOpaque()
            return memory.withUnsafeBufferPointer { mem in
                var b = agent_http_body(fd: -1, offset: 0, length: 0, data: nil)
                switch body {
                case .bytes(let bytes)?:
                    b.length = Int64(bytes.count)
                    b.data = UnsafeRawPointer(mem.baseAddress).map { $0.assumingMemoryBound(to: CChar.self) }
                case .file(let fd, let off, let len)?:
                    b.fd = fd; b.offset = off; b.length = len
                case nil: break
                }
                return cHeaders.map { UnsafePointer<CChar>($0) }.withUnsafeBufferPointer { hp in
                    withUnsafePointer(to: &b) { bp in
                        agent_http_request(method, url, hp.baseAddress, hp.count, body == nil ? nil : bp, 0, timeoutSeconds,
                                           SinkBox.bodyCallback, SinkBox.headerCallback, ctx, &result)
                    }
                }
            }
        }
        if rc != 0 {
            if box.aborted { throw HTTPError(url: url, message: "the response is larger than \(maxBytes) bytes") }
            throw HTTPError(url: url, message: result.message)
        }
        return HTTPResponse(status: Int(result.status), headers: box.headers, body: collected)
    }
}
