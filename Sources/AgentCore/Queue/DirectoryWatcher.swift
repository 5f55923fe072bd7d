import AgentSupport
import CAgentSys
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// Watches folders with inotify on a dedicated thread and reports, as an async stream,
/// which folder had something renamed or written into it. Events are coalesced per read;
/// consumers rescan the folder, so a lost or merged event costs nothing but latency (the
/// periodic rescan is the safety net, e.g. on NFS where inotify sees only local changes).
final class DirectoryWatcher: @unchecked Sendable {
    /// The stream of folder tags that changed (`IN_Q_OVERFLOW` reports every tag).
    let events: AsyncStream<String>
    private let continuation: AsyncStream<String>.Continuation
    private let inotifyFD: Int32
    private let stopPipe: (read: Int32, write: Int32)

    /// Watches each `path → tag`; throws naming the folder inotify refused.
    init(_ folders: [(path: String, tag: String)]) throws {
        let (stream, cont) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingNewest(64))
        events = stream
        continuation = cont
        inotifyFD = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        if inotifyFD < 0 { throw QueueError.io(operation: "inotify_init1", path: folders.first?.path ?? "", errno: errno) }
        // Close-on-exec from the start (pipe2), never set afterwards: a job started by another
        // thread in between would inherit the pipe.
        var fds: [Int32] = [0, 0]
        if agent_pipe_cloexec(&fds, 1) != 0 {
            let e = errno
            close(inotifyFD)
            throw QueueError.io(operation: "pipe2", path: folders.first?.path ?? "", errno: e)
        }
        stopPipe = (fds[0], fds[1])
        let mask = UInt32(IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE | IN_ONLYDIR)
        var wdTags: [Int32: String] = [:]
        for folder in folders {
            let wd = inotify_add_watch(inotifyFD, folder.path, mask)
            if wd < 0 {
                let e = errno
                close(inotifyFD); close(fds[0]); close(fds[1])
                throw QueueError.io(operation: "inotify_add_watch", path: folder.path, errno: e)
            }
            wdTags[wd] = folder.tag
        }
        let fd = inotifyFD, stopFD = fds[0], allTags = Array(Set(wdTags.values)), tagMap = wdTags
        do {
            try startDetachedThread {
                DirectoryWatcher.loop(inotifyFD: fd, stopFD: stopFD, tags: tagMap, allTags: allTags, continuation: cont)
            }
        } catch {
            close(inotifyFD); close(fds[0]); close(fds[1])
            throw QueueError.io(operation: "pthread_create", path: folders.first?.path ?? "", errno: error.errno)
        }
    }

    private static func loop(inotifyFD: Int32, stopFD: Int32, tags: [Int32: String], allTags: [String],
                             continuation: AsyncStream<String>.Continuation) {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var pfds = [pollfd(fd: inotifyFD, events: Int16(POLLIN), revents: 0),
                    pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0)]
        while true {
            pfds[0].revents = 0
            pfds[1].revents = 0
            let r = poll(&pfds, 2, -1)
            if r < 0 { if errno == EINTR { continue }; break }
            if pfds[1].revents != 0 { break }
            var changed = Set<String>()
            while true {
                let n = buffer.withUnsafeMutableBytes { Glibc.read(inotifyFD, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                var offset = 0
                buffer.withUnsafeBytes { raw in
                    while offset + MemoryLayout<inotify_event>.size <= n {
                        let wd = raw.loadUnaligned(fromByteOffset: offset, as: Int32.self)
                        let mask = raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
                        let len = raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self)
                        if mask & UInt32(IN_Q_OVERFLOW) != 0 {
                            changed.formUnion(allTags)
                        } else if let tag = tags[wd] {
                            changed.insert(tag)
                        }
                        offset += MemoryLayout<inotify_event>.size + Int(len)
                    }
                }
            }
            for tag in changed { continuation.yield(tag) }
        }
        close(inotifyFD)
        close(stopFD)
        continuation.finish()
    }

    /// Stops the thread (it closes the inotify descriptor) and ends the stream.
    func stop() {
        var one: UInt8 = 1
        _ = write(stopPipe.write, &one, 1)
        close(stopPipe.write)
    }
}
