import IFCNCompute

extension Network {
    enum GradientMode { case overwrite, accumulate, zeroThenAccumulate, none }

    /// Decides, once, whether each op's input gradient overwrites, adds to, or must first clear
    /// its destination, so gradient memory never needs clearing: no gradient is read before it is written.
    static func planBackward(_ g: Graph) -> [(op: Int, mode: GradientMode)] {
        var written: [Range<Int>] = [g.segLogit.offset..<(g.segLogit.offset + g.segLogit.count),
                                     g.clsLogit.offset..<(g.clsLogit.offset + g.clsLogit.count)]
        let inputRange = g.input.offset..<(g.input.offset + g.input.count)
        func covered(_ r: Range<Int>) -> Int {
            written.reduce(0) { $0 + ($1.clamped(to: r)).count }  // written ranges never overlap
        }
        var plan: [(Int, GradientMode)] = []
        for (i, op) in g.ops.enumerated().reversed() {
            let target: Activation?
            switch op {
            case let .conv3(x, _, _, _), let .batchNorm(x, _, _, _, _), let .maxPool(x, _),
                 let .upsample(x, _), let .conv1(x, _, _, _), let .globalMax(x, _):
                target = x
            case .relu, .sigmoid:
                target = nil
            }
            guard let x = target else { plan.append((i, .none)); continue }
            let r = x.offset..<(x.offset + x.count)
            if r.overlaps(inputRange) { plan.append((i, .none)); continue }
            let c = covered(r)
            let mode: GradientMode = c == 0 ? .overwrite : (c == r.count ? .accumulate : .zeroThenAccumulate)
            plan.append((i, mode))
            if mode != .accumulate {
                // replace the written pieces inside r by r itself
                written = written.flatMap { w -> [Range<Int>] in
                    guard w.overlaps(r) else { return [w] }
                    var rest: [Range<Int>] = []
                    if w.lowerBound < r.lowerBound { rest.append(w.lowerBound..<r.lowerBound) }
                    if w.upperBound > r.upperBound { rest.append(r.upperBound..<w.upperBound) }
                    return rest
                } + [r]
            }
        }
        return plan
    }
}
