import Glibc

// Writing whole messages to a descriptor. FoundationEssentials has no FileHandle; these
// also retry short writes and EINTR, which a message to a pipe can see.

/// Writes all of `bytes` to `fd`; returns false (errno set) if the descriptor refused.
@discardableResult
package func writeAll(_ fd: Int32, _ bytes: some Collection<UInt8>) -> Bool {
    var array = Array(bytes)
    var offset = 0
    return array.withUnsafeMutableBytes { raw in
        while offset < raw.count {
            let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
            if n > 0 { offset += n } else if n < 0 && errno == EINTR { continue } else { return false }
        }
        return true
    }
}

/// Writes `text` to standard error (messages for the user: `agent: ...`).
package func printToStandardError(_ text: String) {
    writeAll(STDERR_FILENO, Array(text.utf8))
}

/// Writes `text` to standard output.
package func printToStandardOutput(_ text: String) {
    writeAll(STDOUT_FILENO, Array(text.utf8))
}

/// Reads `fd` to its end; nil if a read fails or the data would exceed `limit` bytes.
package func readToEnd(_ fd: Int32, limit: Int = .max) -> [UInt8]? {
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n > 0 {
            guard out.count + n <= limit else { return nil }
            out += chunk[0..<n]
        } else if n == 0 {
            return out
        } else if errno != EINTR {
            return nil
        }
    }
}
