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

/// Reads `fd` until its end or until `limit` bytes, whichever comes first; nil if a read
/// fails (errno set). To learn that a file is too big without reading all of it, ask for
/// one byte more than allowed. The buffer is sized from `fstat`, so a regular file is
/// read with one `read` (and one more that sees its end).
package func readUpTo(_ fd: Int32, limit: Int) -> [UInt8]? {
    var st = stat()
    let size = fstat(fd, &st) == 0 && st.st_size > 0 ? Int(st.st_size) : 64 * 1024
    var buffer = [UInt8](repeating: 0, count: max(1, min(size + 1, limit)))
    var count = 0
    while count < limit {
        if count == buffer.count { buffer += repeatElement(0, count: min(buffer.count, limit - count)) }
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + count, $0.count - count) }
        if n < 0 {
            if errno == EINTR { continue }
            return nil
        }
        if n == 0 { break }
        count += n
    }
    buffer.removeLast(buffer.count - count)
    return buffer
}
