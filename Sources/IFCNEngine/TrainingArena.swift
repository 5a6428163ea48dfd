import IFCNCompute

/// The memory of a network built for training: every activation block and every activation gradient in one
/// arena, shared by liveness over one training step.
///
/// The step is a timeline: the input is set (step 0), forward op i runs (step i + 1), the loss reads the
/// probabilities and writes the logits' gradients (F + 1), backward entry k runs (F + 2 + k), and after the step
/// the trainer reads the segmentation and the completeness (F + 2 + K). An activation lives from its forward op
/// to its last read, backward included (`Graph.backwardReads`); a gradient from its first touch to its last.
/// Blocks never live together share memory, first fit (`ArenaPacking`): the gradients of the early layers take
/// the memory of late activations the backward pass has finished with, gradients never live together share as
/// they did in a separate gradient arena, and batch norm's input gradient takes its output gradient's memory
/// where that dies. The backward plan writes every gradient before reading it (`Network.planBackward`), so
/// memory handed from block to block needs no clearing.
///
/// At the paper's size (C=64, P=128) activations and gradients took 5,366 + 2,057 MiB apart and take 5,887 MiB
/// here: the step's peak is the start of the backward pass, where every activation is live beside one
/// full-size gradient (docs/BENCHMARKS.md).
struct TrainingArena {
    private let starts: [Int]              // activation block starts in the graph, ascending
    private let activationStarts: [Int]    // arena offsets of each block's activation
    private let gradientStarts: [Int]      // arena offsets of each block's gradient (-1: never used)
    /// Floats of the arena.
    let size: Int
    /// Floats activations and gradients would take each in their own memory (activations apart, gradients shared
    /// among themselves by liveness), for the record.
    let separateSize: (activations: Int, gradients: Int)

    /// `sharing` false gives every activation its own memory and packs the gradients apart from them (as before
    /// the arena was shared): the tests' reference for what sharing must not change.
    init(graph g: Graph, plan: [(op: Int, mode: Network.GradientMode)], sharing: Bool = true) {
        let sizes = g.blockSizes, n = sizes.count
        let forwardSteps = g.ops.count, loss = forwardSteps + 1, end = loss + 1 + plan.count
        // Blocks 0..<n: activations; n..<2n: their gradients.
        var first = [Int](repeating: Int.max, count: 2 * n), last = [Int](repeating: -1, count: 2 * n)
        func touch(_ a: Activation, gradient: Bool, _ step: Int) {
            let b = g.block(containing: a.offset) + (gradient ? n : 0)
            first[b] = min(first[b], step); last[b] = max(last[b], step)
        }
        for (i, op) in g.ops.enumerated() {
            for a in Graph.activations(of: op) { touch(a, gradient: false, i + 1) }
        }
        // The input is set before the forward pass; the outputs are read after the step.
        touch(g.input, gradient: false, 0)
        for a in [g.input, g.segLogit, g.segProb, g.clsLogit].compactMap({ $0 }) { touch(a, gradient: false, end) }
        // The loss reads the probabilities and the completeness logit and writes the two logits' gradients.
        touch(g.segProb, gradient: false, loss); touch(g.clsLogit, gradient: false, loss)
        touch(g.segLogit, gradient: true, loss); touch(g.clsLogit, gradient: true, loss)
        for (k, entry) in plan.enumerated() {
            let step = loss + 1 + k, op = g.ops[entry.op]
            for a in Graph.backwardReads(of: op) { touch(a, gradient: false, step) }
            switch op {
            case let .conv3(x, y, _, _), let .batchNorm(x, y, _, _, _), let .maxPool(x, y),
                 let .upsample(x, y), let .conv1(x, y, _, _), let .globalMax(x, y):
                touch(y, gradient: true, step)
                if entry.mode != .none { touch(x, gradient: true, step) }
            case let .relu(x):
                touch(x, gradient: true, step)
            case .sigmoid:
                break  // folded into the loss
            }
        }
        // 16 floats (64 bytes) apart, as the backends' allocations are.
        func pack(_ blocks: [Int]) -> [Int: Int] {
            let (offsets, _) = ArenaPacking.firstFit(sizes: blocks.map { sizes[$0 % n] }, first: blocks.map { first[$0] },
                                                     last: blocks.map { last[$0] }, alignment: 16)
            return Dictionary(uniqueKeysWithValues: zip(blocks, offsets))
        }
        func extent(_ offsets: [Int: Int]) -> Int { offsets.map { $0.value < 0 ? 0 : $0.value + sizes[$0.key % n] }.max() ?? 0 }
        let gradientsApart = pack(Array(n..<(2 * n)))
        separateSize = (g.arenaSize, extent(gradientsApart))
        starts = g.blockStarts
        guard sharing else {
            activationStarts = g.blockStarts
            gradientStarts = (n..<(2 * n)).map { gradientsApart[$0]! < 0 ? -1 : g.arenaSize + gradientsApart[$0]! }
            size = g.arenaSize + separateSize.gradients
            return
        }
        // Batch norm's backward pass reads each element of the output gradient before it writes the same element of
        // the input gradient (both backends), so where it overwrites a whole block whose output gradient dies there,
        // the input gradient takes the output gradient's memory.
        var root = Array(0..<(2 * n))
        for (k, entry) in plan.enumerated() where entry.mode == .overwrite {
            guard case let .batchNorm(x, y, _, _, _) = g.ops[entry.op], x.count == y.count else { continue }
            let step = loss + 1 + k, bx = g.block(containing: x.offset) + n, by = g.block(containing: y.offset) + n
            guard starts[bx - n] == x.offset, sizes[bx - n] == x.count, starts[by - n] == y.offset, sizes[by - n] == y.count,
                  root[by] == by, last[by] == step, first[bx] == step else { continue }
            root[bx] = by
            last[by] = last[bx]
        }
        let offsets = pack((0..<(2 * n)).filter { root[$0] == $0 })
        activationStarts = (0..<n).map { offsets[$0]! }
        gradientStarts = (n..<(2 * n)).map { offsets[root[$0]]! }
        size = extent(offsets)
        precondition(activationStarts.allSatisfy { $0 >= 0 }, "an activation the training step never touches")
    }

    /// Arena offset of the activation at graph offset `offset`.
    func activation(at offset: Int) -> Int {
        let b = ArenaPacking.block(in: starts, containing: offset)
        return activationStarts[b] + (offset - starts[b])
    }

    /// Arena offset of the gradient of the activation at graph offset `offset`.
    func gradient(at offset: Int) -> Int {
        let b = ArenaPacking.block(in: starts, containing: offset)
        precondition(gradientStarts[b] >= 0, "gradient of an activation the backward pass never touches")
        return gradientStarts[b] + (offset - starts[b])
    }
}

extension Graph {
    /// The activations the backward pass of `op` reads (`Network.runBackward` passes these and no others to the
    /// backend): a convolution's input for its weight gradient, batch norm's input and output (the output for
    /// the fused ReLU's mask), max pooling's and global max pooling's input and output (where the maximum was),
    /// ReLU's output. Upsampling and the sigmoid (folded into the loss) read none.
    static func backwardReads(of op: Op) -> [Activation] {
        switch op {
        case let .conv3(x, _, _, _), let .conv1(x, _, _, _): [x]
        case let .batchNorm(x, y, _, _, _), let .maxPool(x, y), let .globalMax(x, y): [x, y]
        case let .relu(x): [x]
        case .upsample, .sigmoid: []
        }
    }
}
