import Glibc

/// `O_PATH` (Linux; the same value on x86_64 and aarch64). Swift's Glibc module does not
/// export it (it sits behind `_GNU_SOURCE`): a descriptor that names a file without opening
/// it for reading or writing, for `openat`, `fstat` and `/proc/self/fd` hand-offs.
public let O_PATH: Int32 = 0o10_000_000
