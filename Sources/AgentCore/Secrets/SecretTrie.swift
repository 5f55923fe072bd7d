/// Builds the Aho–Corasick automaton for `SecretMatcher`: a trie of the patterns stored as
/// first-child/next-sibling lists (secrets make long single-child chains, so per-node
/// tables would waste memory), then renumbered breadth-first into flat arrays with
/// failure links and outputs.
struct TrieBuilder {
    private var label: [UInt8] = [0]
    private var firstChild: [Int32] = [-1]
    private var nextSibling: [Int32] = [-1]
    private var terminal: [Int32] = [-1]
    /// The root's children by byte, so inserting thousands of patterns stays cheap.
    private var rootChild = [Int32](repeating: -1, count: 256)

    /// States with more children than this get a dense 256-entry row.
    static let denseThreshold = 4

    init(patterns: [[UInt8]]) {
        for (index, pattern) in patterns.enumerated() { insert(pattern, index: Int32(index)) }
    }

    private mutating func insert(_ pattern: [UInt8], index: Int32) {
        var node: Int32 = 0
        for byte in pattern {
            var child: Int32 = node == 0 ? rootChild[Int(byte)] : firstChild[Int(node)]
            if node != 0 {
                while child >= 0 && label[Int(child)] != byte { child = nextSibling[Int(child)] }
            }
            if child < 0 {
                child = Int32(label.count)
                label.append(byte)
                firstChild.append(-1)
                nextSibling.append(firstChild[Int(node)])
                terminal.append(-1)
                firstChild[Int(node)] = child
                if node == 0 { rootChild[Int(byte)] = child }
            }
            node = child
        }
        terminal[Int(node)] = index
    }

    /// The automaton in flat arrays, states numbered breadth-first (root is 0).
    struct Flat {
        var depth: [Int32] = []
        var fail: [Int32] = []
        var edgeStart: [Int32] = []
        var edgeByte: [UInt8] = []
        var edgeTarget: [Int32] = []
        var denseIndex: [Int32] = []
        var dense: [Int32] = []
        var rootNext = [Int32](repeating: 0, count: 256)
        var matchLength: [Int32] = []
        var terminal: [Int32] = []
        var outputLink: [Int32] = []

        /// The goto edge of `state` for `byte`, if any.
        func child(_ state: Int32, _ byte: UInt8) -> Int32? {
            if state == 0 { let t = rootNext[Int(byte)]; return t > 0 ? t : nil }
            let row = denseIndex[Int(state)]
            if row >= 0 { let t = dense[Int(row) * 256 + Int(byte)]; return t >= 0 ? t : nil }
            for edge in Int(edgeStart[Int(state)])..<Int(edgeStart[Int(state) + 1]) where edgeByte[edge] == byte {
                return edgeTarget[edge]
            }
            return nil
        }
    }

    func flatten() -> Flat {
        let count = label.count
        var flat = Flat()
        flat.depth = [Int32](repeating: 0, count: count)
        flat.fail = [Int32](repeating: 0, count: count)
        flat.edgeStart.reserveCapacity(count + 1)
        flat.edgeByte.reserveCapacity(count)
        flat.edgeTarget.reserveCapacity(count)
        flat.denseIndex = [Int32](repeating: -1, count: count)
        flat.matchLength = [Int32](repeating: 0, count: count)
        flat.terminal = [Int32](repeating: -1, count: count)
        flat.outputLink = [Int32](repeating: -1, count: count)

        // Breadth-first renumbering; a node's children get consecutive edges.
        var order: [Int32] = [0]       // order[new] = old
        order.reserveCapacity(count)
        var head = 0
        var children: [(UInt8, Int32)] = []
        while head < order.count {
            let old = order[head]
            let new = Int32(head)
            head += 1
            children.removeAll(keepingCapacity: true)
            var child = firstChild[Int(old)]
            while child >= 0 { children.append((label[Int(child)], child)); child = nextSibling[Int(child)] }
            children.sort { $0.0 < $1.0 }
            flat.edgeStart.append(Int32(flat.edgeByte.count))
            for (byte, oldChild) in children {
                let newChild = Int32(order.count)
                order.append(oldChild)
                flat.edgeByte.append(byte)
                flat.edgeTarget.append(newChild)
                flat.depth[Int(newChild)] = flat.depth[Int(new)] + 1
                flat.terminal[Int(newChild)] = terminal[Int(oldChild)]
                if new == 0 { flat.rootNext[Int(byte)] = newChild }
            }
            if new != 0 && children.count > Self.denseThreshold {
                flat.denseIndex[Int(new)] = Int32(flat.dense.count / 256)
                let rowStart = flat.dense.count
                flat.dense.append(contentsOf: repeatElement(-1, count: 256))
                for (offset, (byte, _)) in children.enumerated() {
                    flat.dense[rowStart + Int(byte)] = flat.edgeTarget[flat.edgeTarget.count - children.count + offset]
                }
            }
        }
        flat.edgeStart.append(Int32(flat.edgeByte.count))

        // Failure links, outputs and match lengths, breadth-first so a state's failure
        // target (always shallower) is complete before the state is.
        for state in 0..<count {
            let start = Int(flat.edgeStart[state]), end = Int(flat.edgeStart[state + 1])
            for edge in start..<end {
                let byte = flat.edgeByte[edge]
                let target = Int(flat.edgeTarget[edge])
                var failure: Int32 = 0
                if state != 0 {
                    var f = flat.fail[state]
                    while true {
                        if let next = flat.child(f, byte) { failure = next; break }
                        if f == 0 { break }
                        f = flat.fail[Int(f)]
                    }
                }
                flat.fail[target] = failure
                let own = flat.terminal[target] >= 0 ? flat.depth[target] : 0
                flat.matchLength[target] = max(own, flat.matchLength[Int(failure)])
                flat.outputLink[target] = flat.terminal[Int(failure)] >= 0 ? failure : flat.outputLink[Int(failure)]
            }
        }
        return flat
    }
}
