/// The activation arena of a network that only runs eval-mode forward passes (segmentation, forward
/// benchmarks): blocks that are never live at the same time share memory, and the output of an
/// elementwise op (eval batch norm, sigmoid) takes its input's block where the input dies there, so
/// those ops run in place. For the paper network at C=64, P=128 a forward-only process peaks at 2.2 GB
/// instead of 5.5 GB (docs/BENCHMARKS.md).
extension Graph {
    /// Activations referenced by an op (inputs and outputs).
    static func activations(of op: Op) -> [Activation] {
        switch op {
        case let .conv3(x, y, _, _), let .batchNorm(x, y, _, _, _), let .maxPool(x, y), let .upsample(x, y),
             let .conv1(x, y, _, _), let .globalMax(x, y), let .sigmoid(x, y):
            [x, y]
        case let .relu(x):
            [x]
        }
    }

    /// The op with every activation moved by `move`.
    static func moving(_ op: Op, _ move: (Activation) -> Activation) -> Op {
        switch op {
        case let .conv3(x, y, w, b): .conv3(x: move(x), y: move(y), weight: w, bias: b)
        case let .batchNorm(x, y, m, s, r): .batchNorm(x: move(x), y: move(y), module: m, saved: s, relu: r)
        case let .relu(x): .relu(move(x))
        case let .maxPool(x, y): .maxPool(x: move(x), y: move(y))
        case let .upsample(x, y): .upsample(x: move(x), y: move(y))
        case let .conv1(x, y, w, b): .conv1(x: move(x), y: move(y), weight: w, bias: b)
        case let .globalMax(x, y): .globalMax(x: move(x), y: move(y))
        case let .sigmoid(x, y): .sigmoid(x: move(x), y: move(y))
        }
    }

    /// This graph with its activation blocks packed by liveness over the forward pass. Only for eval-mode
    /// forward passes: training keeps every activation for the backward pass.
    func packedForInference() -> Graph {
        let sizes = blockSizes, n = blockStarts.count, steps = ops.count
        // Groups of blocks that share one memory block: an elementwise op's whole-block output joins its
        // whole-block input's group where that input is used for the last time.
        var group = Array(0..<n)
        var lastUse = [Int](repeating: -1, count: n)
        for (i, op) in ops.enumerated() {
            for a in Graph.activations(of: op) { lastUse[block(containing: a.offset)] = i }
        }
        func isWholeBlock(_ a: Activation) -> Bool {
            let b = block(containing: a.offset)
            return blockStarts[b] == a.offset && sizes[b] == a.count
        }
        for (i, op) in ops.enumerated() {
            switch op {
            case let .batchNorm(x, y, _, _, _), let .sigmoid(x, y):
                let bx = block(containing: x.offset), by = block(containing: y.offset)
                let members = group.indices.filter { group[$0] == group[bx] }
                if isWholeBlock(x), isWholeBlock(y), x.count == y.count, members.allSatisfy({ lastUse[$0] <= i }) {
                    group[by] = group[bx]
                }
            default: break
            }
        }
        // Lifetimes per group, in op steps; the input is live from the start, the outputs until the end.
        var first = [Int](repeating: Int.max, count: n), last = [Int](repeating: -1, count: n)
        var groupSize = [Int](repeating: 0, count: n)
        func touch(_ a: Activation, _ step: Int) {
            let g = group[block(containing: a.offset)]
            first[g] = min(first[g], step); last[g] = max(last[g], step)
        }
        for (i, op) in ops.enumerated() {
            for a in Graph.activations(of: op) { touch(a, i) }
            // A backend may fuse a convolution with the batch norm of its output (Network.forward): then the norm's
            // output is written while the convolution's input is read, so it is live from the convolution on.
            if i > 0, case let .batchNorm(x, y, _, _, _) = op, case let .conv3(_, convOutput, _, nil) = ops[i - 1],
               convOutput.offset == x.offset {
                touch(y, i - 1)
            }
        }
        touch(input, -1)
        for a in [segLogit, segProb, clsLogit].compactMap({ $0 }) { touch(a, steps) }
        for b in 0..<n { groupSize[group[b]] = max(groupSize[group[b]], sizes[b]) }
        // 16 floats (64 bytes) apart, as the backends' allocations are.
        let (offsets, size) = ArenaPacking.firstFit(sizes: groupSize, first: first, last: last, alignment: 16)
        func move(_ a: Activation) -> Activation {
            let b = block(containing: a.offset)
            precondition(offsets[group[b]] >= 0, "an activation the forward pass never touches")
            return Activation(offset: offsets[group[b]] + (a.offset - blockStarts[b]), channels: a.channels, extent: a.extent)
        }
        var packed = self
        packed.ops = ops.map { Graph.moving($0, move) }
        packed.input = move(input)
        packed.segLogit = move(segLogit)
        packed.segProb = move(segProb)
        packed.clsLogit = move(clsLogit)
        packed.arenaSize = size
        packed.blockStarts = []  // its blocks share memory: no block layout (TrainingArena uses the unpacked graph)
        return packed
    }
}
