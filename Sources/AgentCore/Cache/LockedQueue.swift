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

    /// Takes the next ticket, locked.
    func enqueue() throws -> Ticket {
        try StateDirectory.makeDirectory(directory, mode: 0o700)
        let counter = try LockFile(path: directory + "/counter")
        defer { counter.close() }
        try counter.lockNow(exclusive: true)
        let fd = counter.descriptor
        var buf = [UInt8](repeating: 0, count: 32)
        let n = pread(fd, &buf, buf.count, 0)
        let current = n > 0 ? UInt64(String(decoding: buf[0..<n], as: UTF8.self).trimmingWhitespaceAndNewlines()) ?? 0 : 0
        let next = String(current + 1)
        _ = ftruncate(fd, 0)
        _ = next.withCString { pwrite(fd, $0, strlen($0), 0) }
        let path = ticketPath(current)
        unlink(path) // a leftover from a counter reset; nobody can be using its number
        let file = try LockFile(path: path)
        guard file.tryLock(exclusive: true) else {
            throw StateError(path: path, message: "fresh ticket is locked by someone else")
        }
        return Ticket(number: current, file: file)
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
