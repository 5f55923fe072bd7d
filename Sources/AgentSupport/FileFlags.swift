import Glibc

/// `O_PATH` (Linux; the same value on x86_64 and aarch64). Swift's Glibc module does not
/// export it (it sits behind `_GNU_SOURCE`): a descriptor that names a file without opening
/// it for reading or writing, for `openat`, `fstat` and `/proc/self/fd` hand-offs.
public let O_PATH: Int32 = 0o10_000_000

/// The text of a small file (a `/proc` or `/etc` entry), read with open/read/close; nil if
/// it cannot be read or is larger than `limit` bytes. The container start path reads a few
/// such files (`/etc/subuid`, `/etc/subgid`, `cap_last_cap`): FoundationEssentials'
/// `String(contentsOfFile:)` cost an auto-mode `agent exec` 0.3-0.5 ms there on first use.
public func readSmallTextFile(_ path: String, limit: Int = 16 << 20) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = read(fd, &buf, buf.count)
        if n < 0 { if errno == EINTR { continue }; return nil }
        if n == 0 { return String(decoding: out, as: UTF8.self) }
        out += buf[0..<n]
        if out.count > limit { return nil }
    }
}
