import Foundation
import Synchronization
import Testing
@testable import Sandbox

/// The bounded queue between the supervisor and the output's reader, without a container.
@Suite struct OutputBufferTests {
    final class Wakes: Sendable {
        let count = Mutex(0)
        func wake() { count.withLock { $0 += 1 } }
        var value: Int { count.withLock { $0 } }
    }

    static func chunk(_ n: Int, _ byte: UInt8 = 0x79) -> OutputChunk {
        OutputChunk(stream: .stdout, bytes: [UInt8](repeating: byte, count: n))
    }

    @Test func fullQueueStopsTheProducerUntilTheConsumerMakesRoom() async {
        let wakes = Wakes()
        let b = OutputBuffer(capacityBytes: 1000) { wakes.wake() }
        #expect(b.reserveRoom())
        b.push(Self.chunk(600, 1))
        #expect(b.reserveRoom())
        b.push(Self.chunk(600, 2))
        // 1200 + overhead bytes held: the supervisor must leave the pipes alone.
        #expect(!b.reserveRoom())
        #expect(wakes.value == 0)
        let first = await b.next()
        #expect(first?.bytes.first == 1)
        // Room again: the waiting supervisor is woken exactly once.
        #expect(wakes.value == 1)
        #expect(b.reserveRoom())
        let second = await b.next()
        #expect(second?.bytes.first == 2)
        #expect(wakes.value == 1)
        b.finish()
        #expect(await b.next() == nil)
    }

    @Test func manyTinyChunksAreBoundedToo() {
        let b = OutputBuffer(capacityBytes: 64 << 10) {}
        var pushed = 0
        while b.reserveRoom() && pushed < 1_000_000 {
            b.push(Self.chunk(1))
            pushed += 1
        }
        // Each chunk counts its fixed overhead, so a flood of 1-byte reads stops early.
        #expect(pushed <= (64 << 10) / OutputBuffer.cost(Self.chunk(1)) + 1)
    }

    @Test func aWaitingConsumerGetsChunksInOrderAndTheEnd() async {
        let b = OutputBuffer(capacityBytes: 4096) {}
        let reader = Task { () -> [UInt8] in
            var seen: [UInt8] = []
            for await c in ContainerOutput(buffer: b) { seen.append(c.bytes[0]) }
            return seen
        }
        for i in 0..<200 {
            while !b.reserveRoom() { await Task.yield() }
            b.push(Self.chunk(100, UInt8(i)))
        }
        b.finish()
        #expect(await reader.value == (0..<200).map { UInt8($0) })
    }

    @Test func abandonedBufferDropsOutputAndWakesTheProducer() async {
        let wakes = Wakes()
        let b = OutputBuffer(capacityBytes: 100) { wakes.wake() }
        b.push(Self.chunk(200))
        #expect(!b.reserveRoom())
        ContainerOutput(buffer: b).discard()
        #expect(wakes.value == 1)
        #expect(b.reserveRoom())
        b.push(Self.chunk(200))
        #expect(b.reserveRoom())
        #expect(await b.next() == nil)
    }
}
