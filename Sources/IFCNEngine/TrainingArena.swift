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
/// Batch norm's backward pass reads its input only, so its output lives until its last read in the forward
/// pass unless a convolution's weight gradient reads it; there, where it lowers the peak, the backward pass
/// recomputes the output just before that convolution (`Recomputation`).
///
/// At the paper's size (C=64, P=128) activations and gradients took 5,366 + 2,057 MiB apart, and 5,887 MiB
/// shared with every output kept (session 15: the step's peak was the start of the backward pass, where every
/// activation was live beside one full-size gradient); with three outputs recomputed they take 4,752 MiB
/// (docs/BENCHMARKS.md).
struct TrainingArena {
    /// A batch norm's output that the backward pass recomputes (`ComputeBackend.batchNormRecompute`, from the
    /// norm's input, which its own backward pass keeps anyway, and what it saved) just before the one op whose
    /// backward pass reads it, a convolution's weight gradient, into a block that lives for that op alone: the
    /// output's memory is free from its last forward read on. Chosen where it lowers the arena's size.
    struct Recomputation {
        /// Index of the batch norm's op in the graph.
        let norm: Int
        /// Arena offset of the recomputed output.
        let offset: Int
    }

    private let starts: [Int]              // activation block starts in the graph, ascending
    private let activationStarts: [Int]    // arena offsets of each block's activation
    private let gradientStarts: [Int]      // arena offsets of each block's gradient (-1: never used)
    /// The recomputed outputs, by the index of the op whose backward pass reads them.
    let recomputations: [Int: Recomputation]
    /// Floats of the arena.
    let size: Int
    /// Floats activations and gradients would take each in their own memory (activations apart, gradients shared
    /// among themselves by liveness), for the record.
    let separateSize: (activations: Int, gradients: Int)

    /// `sharing` false gives every activation its own memory, keeps every output, and packs the gradients apart
    /// from them (as before the arena was shared): the tests' reference for what sharing must not change.
    /// `recomputing` false keeps every batch-norm output the backward pass reads (for the record).
    init(graph g: Graph, plan: [(op: Int, mode: Network.GradientMode)], sharing: Bool = true, recomputing: Bool = true) {
        let sizes = g.blockSizes, n = sizes.count
        starts = g.blockStarts
        let gradientsApart = Layout(g, plan, recomputing: [], packing: Array(n..<(2 * n)), merging: false)
        separateSize = (g.arenaSize, gradientsApart.size)
        guard sharing else {
            activationStarts = g.blockStarts
            gradientStarts = (n..<(2 * n)).map { gradientsApart.offsets[$0]! < 0 ? -1 : g.arenaSize + gradientsApart.offsets[$0]! }
            recomputations = [:]
            size = g.arenaSize + separateSize.gradients
            return
        }
        func layout(_ recomputing: [(reader: Int, norm: Int)]) -> Layout {
            Layout(g, plan, recomputing: recomputing, packing: Array(0..<(2 * n + recomputing.count)), merging: true)
        }
        // Every candidate recomputed, then each given up again where the arena is no larger without it (an output
        // read right at the start of the backward pass, the peak, saves nothing and would cost a pass).
        var chosen = recomputing ? Graph.recomputable(g) : [], best = layout(chosen)
        for candidate in chosen.reversed() {
            let fewer = chosen.filter { $0.reader != candidate.reader }, trial = layout(fewer)
            if trial.size <= best.size { chosen = fewer; best = trial }
        }
        activationStarts = (0..<n).map { best.offsets[$0]! }
        gradientStarts = (n..<(2 * n)).map { best.offsets[best.root[$0]]! }
        recomputations = Dictionary(uniqueKeysWithValues: chosen.enumerated().map { k, r in
            (r.reader, Recomputation(norm: r.norm, offset: best.offsets[2 * n + k]!))
        })
        size = best.size
        precondition(activationStarts.allSatisfy { $0 >= 0 }, "an activation the training step never touches")
    }

    /// Block lifetimes over the step's timeline and the packing of `blocks`: 0..<n are the activations, n..<2n
    /// their gradients, 2n + k the output of recomputation k. `merging`: batch norm's input gradients take their
    /// output gradients' memory where they can.
    private struct Layout {
        var offsets: [Int: Int] = [:]
        var root: [Int] = []
        var size = 0

        init(_ g: Graph, _ plan: [(op: Int, mode: Network.GradientMode)], recomputing: [(reader: Int, norm: Int)],
             packing blocks: [Int], merging: Bool) {
            let sizes = g.blockSizes, n = sizes.count
            let forwardSteps = g.ops.count, loss = forwardSteps + 1, end = loss + 1 + plan.count
            let total = 2 * n + recomputing.count
            var blockSize = (0..<total).map { $0 < 2 * n ? sizes[$0 % n] : 0 }
            var first = [Int](repeating: Int.max, count: total), last = [Int](repeating: -1, count: total)
            func touch(block b: Int, _ step: Int) { first[b] = min(first[b], step); last[b] = max(last[b], step) }
            func touch(_ a: Activation, gradient: Bool, _ step: Int) {
                touch(block: g.block(containing: a.offset) + (gradient ? n : 0), step)
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
            let recomputed = Dictionary(uniqueKeysWithValues: recomputing.enumerated().map { ($1.reader, ($0, $1.norm)) })
            for (k, entry) in plan.enumerated() {
                let step = loss + 1 + k, op = g.ops[entry.op]
                if let (r, norm) = recomputed[entry.op], case let .batchNorm(x, y, _, _, _) = g.ops[norm] {
                    // The recomputation reads the norm's input and writes its own block, which the op then reads.
                    touch(x, gradient: false, step)
                    blockSize[2 * n + r] = y.count
                    touch(block: 2 * n + r, step)
                } else {
                    for a in Graph.backwardReads(of: op) { touch(a, gradient: false, step) }
                }
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
            // Batch norm's backward pass reads each element of the output gradient before it writes the same element
            // of the input gradient (both backends), so where it overwrites a whole block whose output gradient dies
            // there, the input gradient takes the output gradient's memory.
            root = Array(0..<total)
            if merging {
                let starts = g.blockStarts
                for (k, entry) in plan.enumerated() where entry.mode == .overwrite {
                    guard case let .batchNorm(x, y, _, _, _) = g.ops[entry.op], x.count == y.count else { continue }
                    let step = loss + 1 + k, bx = g.block(containing: x.offset) + n, by = g.block(containing: y.offset) + n
                    guard starts[bx - n] == x.offset, sizes[bx - n] == x.count, starts[by - n] == y.offset,
                          sizes[by - n] == y.count, root[by] == by, last[by] == step, first[bx] == step else { continue }
                    root[bx] = by
                    last[by] = last[bx]
                }
            }
            // 16 floats (64 bytes) apart, as the backends' allocations are.
            let packed = blocks.filter { root[$0] == $0 }
            let (placed, _) = ArenaPacking.firstFit(sizes: packed.map { blockSize[$0] }, first: packed.map { first[$0] },
                                                    last: packed.map { last[$0] }, alignment: 16)
            offsets = Dictionary(uniqueKeysWithValues: zip(packed, placed))
            size = offsets.map { $0.value < 0 ? 0 : $0.value + blockSize[$0.key] }.max() ?? 0
        }
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
    /// backend): a convolution's input for its weight gradient, batch norm's input (the fused ReLU's mask comes from
    /// it too), max pooling's and global max pooling's input and output (where the maximum was), ReLU's output.
    /// Upsampling and the sigmoid (folded into the loss) read none.
    static func backwardReads(of op: Op) -> [Activation] {
        switch op {
        case let .conv3(x, _, _, _), let .conv1(x, _, _, _): [x]
        case let .batchNorm(x, _, _, _, _): [x]
        case let .maxPool(x, y), let .globalMax(x, y): [x, y]
        case let .relu(x): [x]
        case .upsample, .sigmoid: []
        }
    }

    /// The activation `op` writes.
    static func output(of op: Op) -> Activation {
        switch op {
        case let .conv3(_, y, _, _), let .batchNorm(_, y, _, _, _), let .maxPool(_, y), let .upsample(_, y),
             let .conv1(_, y, _, _), let .globalMax(_, y), let .sigmoid(_, y): y
        case let .relu(x): x
        }
    }

    /// Batch norms whose output the backward pass could recompute instead of keeping (`TrainingArena`), by the op
    /// that reads it there, in op order: an output that is a whole block, written by the norm alone, not read
    /// after the step, and read in the backward pass by one op only, a convolution taking it whole as its input.
    static func recomputable(_ g: Graph) -> [(reader: Int, norm: Int)] {
        let sizes = g.blockSizes
        let kept = Set([g.input, g.segLogit, g.segProb, g.clsLogit].compactMap { $0 }.map { g.block(containing: $0.offset) })
        var found: [(reader: Int, norm: Int)] = []
        for (i, op) in g.ops.enumerated() {
            guard case let .batchNorm(_, y, _, _, _) = op else { continue }
            let b = g.block(containing: y.offset)
            guard g.blockStarts[b] == y.offset, sizes[b] == y.count, !kept.contains(b) else { continue }
            let inBlock = { (a: Activation) in g.block(containing: a.offset) == b }
            let writers = g.ops.indices.filter { inBlock(Graph.output(of: g.ops[$0])) }
            let readers = g.ops.indices.filter { Graph.backwardReads(of: g.ops[$0]).contains(where: inBlock) }
            guard writers == [i], readers.count == 1, let j = readers.first else { continue }
            let input: Activation
            switch g.ops[j] {
            case let .conv3(x, _, _, _), let .conv1(x, _, _, _): input = x
            default: continue
            }
            if input.offset == y.offset, input.count == y.count { found.append((j, i)) }
        }
        return found
    }
}
