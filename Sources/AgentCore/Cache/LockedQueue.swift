import AgentSupport
import FoundationEssentials
import Glibc

/// A fair, first-come first-served queue for `sharing=locked` caches, built from `flock`s
/// so it survives nothing: every lock dies with its holder.
///
/// BuildKit polls a locked cache every 100 ms, so a waiter can be overtaken indefinitely.
/// Here each arrival takes a numbered ticket (`t-<n>`) under a short counter lock and holds an
/// exclusive `flock` on it until it releases the cache. A waiter blocks in the kernel on the
/// ticket of its nearest predecessor. When that lock is granted the predecessor has either
/// released the cache or died; the waiter then looks again for a lower ticket (there is one
/// only if the predecessor died while itself waiting) and proceeds when none is left.
/// Tickets are created and locked under the counter lock, so a waiter can never find a
/// ticket that exists but is not yet locked.
struct LockedQueue: Sendable {
    /// Folder of the counter and the tickets (under the state folder's `locks/`).
    let directory: String

    /// A place in the queue; hold it while using the cache, then `leave()`.
    final class Ticket: @unchecked Sendable {
        let number: UInt64
        let file: LockFile
        init(number: UInt64, file: LockFile) {
            self.number = number
            self.file = file
        }

        /// Unlink first, then close: a successor blocked on our file is woken by the close
        /// and finds the name gone, so it never waits on a stale ticket.
        func leave() {
            if file.isCurrent() { unlink(file.path) }
            file.close()
        }
    }

    /// Width of the counter file: fixed, so it is rewritten in place (`pwrite`, never
    /// `ftruncate`) and no crash can leave it empty.
    static let counterWidth = 20

    /// Takes the next ticket, locked.
    ///
    /// Crash safety: the number is the larger of the counter file and one past the highest
    /// ticket that exists. Every live ticket exists as a file (created under the counter
    /// lock), so even a torn or unreadable counter never hands out a held number; an
    /// existing file with the chosen number (which that rule already excludes) is skipped,
    /// never unlinked.
    func enqueue() throws -> Ticket {
        try StateDirectory.makeDirectory(directory, mode: 0o700)
        let counter = try LockFile(path: directory + "/counter")
        defer { counter.close() }
        try counter.lockNow(exclusive: true)
        let fd = counter.descriptor
        var current = max(Self.readCounter(fd) ?? 0, highestTicket().map { $0 &+ 1 } ?? 0)
        while true {
            let path = ticketPath(current)
            let created = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if created < 0 {
                guard errno == EEXIST else { throw StateError(path: path, errno: errno, message: "cannot create ticket") }
                current += 1
                continue
            }
            Glibc.close(created)
            let file = try LockFile(path: path)
            guard file.tryLock(exclusive: true) else {
                throw StateError(path: path, message: "fresh ticket is locked by someone else")
            }
            Self.writeCounter(fd, current + 1)
            return Ticket(number: current, file: file)
        }
    }

    /// The counter's number, or nil when it is missing, torn or not a number.
    static func readCounter(_ fd: Int32) -> UInt64? {
        var buf = [UInt8](repeating: 0, count: 32)
        let n = pread(fd, &buf, buf.count, 0)
        guard n > 0 else { return nil }
        return UInt64(String(decoding: buf[0..<n], as: UTF8.self).trimmingWhitespaceAndNewlines())
    }

    /// Writes `value` zero-padded to `counterWidth` digits plus a newline, in place, then fsyncs.
    static func writeCounter(_ fd: Int32, _ value: UInt64) {
        let digits = String(value)
        let text = String(repeating: "0", count: max(0, counterWidth - digits.count)) + digits + "\n"
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
        _ = fsync(fd)
    }

    /// The highest ticket number present in the folder.
    func highestTicket() -> UInt64? {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return nil }
        return names.compactMap { $0.hasPrefix("t-") ? UInt64($0.dropFirst(2)) : nil }.max()
    }

    /// The nearest ticket before `number` that still exists.
    func predecessor(of number: UInt64) -> UInt64? {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return nil }
        var best: UInt64?
        for name in names where name.hasPrefix("t-") {
            guard let n = UInt64(name.dropFirst(2)), n < number else { continue }
            if let b = best, b >= n { continue }
            best = n
        }
        return best
    }

    /// Waits until every earlier ticket is gone. Calls `onWait` once, before the first real wait
    /// (not for tickets whose holders already died).
    /// Returns whether it had to wait.
    func waitTurn(_ ticket: Ticket, onWait: () -> Void) async throws -> Bool {
        var waited = false
        while let pred = predecessor(of: ticket.number) {
            let path = ticketPath(pred)
            guard let file = LockFile(existing: path) else { continue } // left meanwhile
            // A ticket whose holder is gone is passed without waiting (or telling anyone).
            if !file.tryLock(exclusive: true) {
                if !waited { onWait(); waited = true }
                try await file.lock(exclusive: true)
            }
            // Granted: its holder released or died. Remove a dead one's ticket for the others.
            if file.isCurrent() { unlink(path) }
            file.close()
        }
        return waited
    }

    func ticketPath(_ n: UInt64) -> String {
        // Zero-padded so a directory listing sorts like the numbers.
        directory + "/t-" + String(repeating: "0", count: max(0, 20 - String(n).count)) + String(n)
    }
}
