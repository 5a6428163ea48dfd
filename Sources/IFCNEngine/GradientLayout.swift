import IFCNCompute

/// Gradient storage by liveness: an activation block's gradient exists from the first backward op
/// that touches it to the last, and blocks whose lifetimes do not overlap share memory (first fit).
/// The backward plan's overwrite/accumulate decisions never read a gradient before it is written,
/// so reused memory needs no clearing.
struct GradientLayout {
    private let starts: [Int]          // activation block starts, ascending
    private let gradStarts: [Int]      // matching gradient-arena offsets (-1: never used)
    let size: Int

    init(graph g: Graph, plan: [(op: Int, mode: Network.GradientMode)]) {
        let starts = g.blockStarts, sizes = g.blockSizes
        var first = [Int](repeating: Int.max, count: starts.count), last = [Int](repeating: -1, count: starts.count)
        func touch(_ a: Activation, _ step: Int) {
            let b = g.block(containing: a.offset)
            first[b] = min(first[b], step); last[b] = max(last[b], step)
        }
        // step 0: the loss writes the gradients of the two logits
        touch(g.segLogit, 0); touch(g.clsLogit, 0)
        for (k, entry) in plan.enumerated() {
            let step = k + 1
            switch g.ops[entry.op] {
            case let .conv3(x, y, _, _), let .batchNorm(x, y, _, _, _), let .maxPool(x, y),
                 let .upsample(x, y), let .conv1(x, y, _, _), let .globalMax(x, y):
                touch(y, step)
                if entry.mode != .none { touch(x, step) }
            case let .relu(x):
                touch(x, step)
            case .sigmoid:
                break
            }
        }
        // first fit over blocks in order of first use; a block's memory is free after its last use
        let (gradStarts, size) = ArenaPacking.firstFit(sizes: sizes, first: first, last: last)
        self.starts = starts
        self.gradStarts = gradStarts
        self.size = size
    }

    /// Gradient-arena offset of the activation at `offset`.
    func offset(of offset: Int) -> Int {
        let b = ArenaPacking.block(in: starts, containing: offset)
        precondition(gradStarts[b] >= 0, "gradient of an activation the backward pass never touches")
        return gradStarts[b] + (offset - starts[b])
    }
}
