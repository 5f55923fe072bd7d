import Synchronization

/// The fixed-size queue between a container's supervisor thread and whoever reads its
/// output: the bound that keeps the agent's memory flat whatever a step prints.
///
/// The supervisor reads a pipe only while `reserveRoom()` says there is room; once the queue
/// holds `capacityBytes` it stops polling the output pipes, the pipes fill, and the command
/// blocks in write(2) — backpressure, the same as a shell pipeline into a slow reader. When
/// the consumer takes a chunk out of a full queue it calls `wake` so the supervisor polls
/// the pipes again. One consumer at a time is supported (the step's pump).
final class OutputBuffer: Sendable {
    /// Bytes held at most before the supervisor stops reading (a few pipe reads' worth).
    static let defaultCapacity = 1 << 20

    private struct State {
        var chunks: [OutputChunk] = []
        var head = 0
        var bytes = 0
        var finished = false
        /// The consumer went away: chunks are dropped so the supervisor never wedges.
        var abandoned = false
        /// The supervisor saw a full queue and waits for `wake`.
        var producerWaiting = false
        var consumer: CheckedContinuation<OutputChunk?, Never>?
    }

    /// What a chunk counts against the capacity: its bytes plus a fixed overhead, so a
    /// flood of tiny writes cannot queue an unbounded number of chunks.
    static func cost(_ chunk: OutputChunk) -> Int { chunk.bytes.count + 256 }

    let capacityBytes: Int
    private let wake: @Sendable () -> Void
    private let state = Mutex(State())

    init(capacityBytes: Int = OutputBuffer.defaultCapacity, wake: @escaping @Sendable () -> Void) {
        self.capacityBytes = max(1, capacityBytes)
        self.wake = wake
    }

    /// Supervisor side: whether to read the pipes now. A `false` answer arms a wake-up for
    /// when the consumer has made room, so the supervisor can block in poll without the pipes.
    func reserveRoom() -> Bool {
        state.withLock { s in
            if s.bytes < capacityBytes || s.abandoned || s.finished { return true }
            s.producerWaiting = true
            return false
        }
    }

    /// Supervisor side: queues a chunk (it may overshoot the capacity by one read).
    func push(_ chunk: OutputChunk) {
        let consumer = state.withLock { s -> CheckedContinuation<OutputChunk?, Never>? in
            guard !s.abandoned, !s.finished else { return nil }
            if let c = s.consumer {
                s.consumer = nil
                return c
            }
            s.chunks.append(chunk)
            s.bytes += Self.cost(chunk)
            return nil
        }
        consumer?.resume(returning: chunk)
    }

    /// Supervisor side: no more chunks will come.
    func finish() {
        let consumer = state.withLock { s -> CheckedContinuation<OutputChunk?, Never>? in
            s.finished = true
            defer { s.consumer = nil }
            return s.consumer
        }
        consumer?.resume(returning: nil)
    }

    /// Consumer side: stop reading; whatever comes is discarded (the command never blocks).
    func abandon() {
        let (consumer, wakeProducer) = state.withLock { s -> (CheckedContinuation<OutputChunk?, Never>?, Bool) in
            s.abandoned = true
            s.chunks = []
            s.head = 0
            s.bytes = 0
            defer { s.consumer = nil; s.producerWaiting = false }
            return (s.consumer, s.producerWaiting)
        }
        consumer?.resume(returning: nil)
        if wakeProducer { wake() }
    }

    private enum Taken { case chunk(OutputChunk, wake: Bool), end, wait }

    /// Takes the oldest chunk, if any; says whether the supervisor waits for room.
    private func take(_ s: inout State) -> Taken {
        guard s.head < s.chunks.count else { return s.finished || s.abandoned ? .end : .wait }
        let chunk = s.chunks[s.head]
        s.head += 1
        s.bytes -= Self.cost(chunk)
        if s.head == s.chunks.count {
            s.chunks.removeAll(keepingCapacity: true)
            s.head = 0
        }
        let wakeProducer = s.producerWaiting && s.bytes < capacityBytes
        if wakeProducer { s.producerWaiting = false }
        return .chunk(chunk, wake: wakeProducer)
    }

    /// Consumer side: the next chunk in arrival order, or nil at the end of both streams.
    /// Cancelling the waiting task abandons the buffer (see `abandon()`).
    func next() async -> OutputChunk? {
        switch state.withLock({ take(&$0) }) {
        case .chunk(let chunk, let wakeProducer):
            if wakeProducer { wake() }
            return chunk
        case .end:
            return nil
        case .wait:
            return await withTaskCancellationHandler {
                await withCheckedContinuation { (c: CheckedContinuation<OutputChunk?, Never>) in
                    // A chunk may have arrived since the first look: take it, or park.
                    let now = state.withLock { s -> Taken in
                        let t = take(&s)
                        if case .wait = t { s.consumer = c }
                        return t
                    }
                    switch now {
                    case .chunk(let chunk, let wakeProducer):
                        if wakeProducer { wake() }
                        c.resume(returning: chunk)
                    case .end: c.resume(returning: nil)
                    case .wait: break
                    }
                }
            } onCancel: {
                abandon()
            }
        }
    }
}

/// A container's captured output: stdout and stderr chunks in arrival order, read through
/// a bounded buffer (see `RunningContainer.output`). Finishes when both pipes reach EOF.
public struct ContainerOutput: AsyncSequence, Sendable {
    public typealias Element = OutputChunk
    public typealias Failure = Never
    let buffer: OutputBuffer

    public struct AsyncIterator: AsyncIteratorProtocol {
        public typealias Element = OutputChunk
        public typealias Failure = Never
        let buffer: OutputBuffer
        public mutating func next() async -> OutputChunk? { await buffer.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(buffer: buffer) }

    /// Stops reading: later output is read and dropped, so the command never blocks on it.
    public func discard() { buffer.abandon() }
}
