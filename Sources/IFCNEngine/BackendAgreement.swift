import Foundation
import IFCNCompute

/// Every kernel of the compute interface run on two backends with the same random inputs, layer
/// by layer, and compared: a device backend against the CPU (relative L2 <= 1e-5 in float32 math).
///
/// Where the candidate holds activations in bfloat16 (`--gpu-activations bf16`), the kernels' activation inputs are
/// bfloat16 values on both backends, and an activation the candidate writes is compared with the reference's result
/// rounded to bfloat16: the two then differ only where their float32 results straddle a rounding boundary, by one
/// bfloat16 unit there (`bfloat16Tolerance`); what the kernels write in float32 (parameter gradients, statistics,
/// the loss's sums) is held to `tolerance`.
public enum BackendAgreement {
    public static let tolerance = 1e-5
    /// One bfloat16 rounding: half a unit in the last place of its 8 significant bits, relative.
    public static let bfloat16Tolerance = 1.0 / 256

    /// Runs each kernel on `reference` and `candidate`; `extent` is a pooling-compatible (even) extent.
    public static func run(reference: any ComputeBackend, candidate: any ComputeBackend,
                           channels: Int = 8, extent: Extent3 = Extent3(16, 20, 24), seed: UInt64 = 11) -> [TensorComparison] {
        var rng = SeededGenerator(seed: seed)
        let c = channels, c2 = channels + 3, e = extent, V = e.voxels
        func rand(_ n: Int, _ scale: Double = 1) -> [Float] { (0..<n).map { _ in Float(rng.normal() * scale) } }
        let x = rand(c * V)
        _ = rand(c2 * V)  // a draw kept so the inputs (and the figures in docs/BENCHMARKS.md) stay the same
        let w3 = rand(c2 * c * 27, 0.2), b3 = rand(c2)
        let dy2 = rand(c2 * V), dy = rand(c * V), w1 = rand(c2 * c, 0.3), b1 = rand(c2)
        let gamma = (0..<c).map { _ in Float(rng.uniform(0.5, 1.5)) }, beta = rand(c, 0.3)
        let runMean = rand(c, 0.1), runVar = (0..<c).map { _ in Float(rng.uniform(0.5, 2)) }
        let prob = (0..<V).map { _ in Float(rng.uniform(0.01, 0.99)) }
        let target = (0..<V).map { _ in Float(rng.uniform() < 0.3 ? 1 : 0) }
        let weight = (0..<V).map { _ in Float(1 + 8 * rng.uniform()) }
        let base = rand(c * V, 0.5)  // what "accumulate" adds onto
        // Probabilities of two boxes (segmentation volumes), from their own generator: a box may be larger than
        // the test's scan, and the draws above stay as they were.
        let boxSide = 12
        var boxRNG = SeededGenerator(seed: seed ^ 0xB0C5)
        let boxProb = (0..<(2 * boxSide * boxSide * boxSide)).map { _ in Float(boxRNG.uniform(0.01, 0.99)) }
        var out: [TensorComparison] = []
        let activations = candidate.allocateActivations(1).format

        /// Runs `body` on both backends and compares the named results.
        func agree(_ name: String, _ body: (Kit) -> [(String, TensorRef)]) {
            let ra = Kit(reference, activations: activations), ca = Kit(candidate, activations: activations)
            let r = body(ra), k = body(ca)
            for ((label, a), (_, b)) in zip(r, k) {
                let narrow = b.buffer.format == .bf16
                let expected = narrow ? ra.read(a).map(BFloat16.round) : ra.read(a)
                let (rel, mx) = compare(ca.read(b), expected)
                out.append(TensorComparison(name: "\(name) \(label)", relativeL2: rel, maxAbs: mx,
                                            passed: rel <= (narrow ? bfloat16Tolerance : tolerance)))
            }
        }
        agree("conv3 forward") { k in
            let y = k.activationZeros(c2 * V)
            k.b.conv3Forward(input: k.a(x), inChannels: c, extent: e, weight: k.t(w3), bias: k.t(b3), output: y, outChannels: c2)
            return [("output", y)]
        }
        agree("conv3 backward data (accumulate)") { k in
            let g = k.a(base)
            k.b.conv3BackwardData(gradOutput: k.a(dy2), outChannels: c2, extent: e, weight: k.t(w3), gradInput: g,
                                  inChannels: c, accumulate: true)
            return [("gradInput", g)]
        }
        agree("conv3 backward weight") { k in
            let gb = k.zeros(c2), gw2 = k.zeros(w3.count)
            k.b.conv3BackwardWeight(input: k.a(x), inChannels: c, extent: e, gradOutput: k.a(dy2), outChannels: c2,
                                    gradWeight: gw2, gradBias: gb)
            return [("gradWeight", gw2), ("gradBias", gb)]
        }
        agree("conv1") { k in
            let y = k.activationZeros(c2 * V), gx = k.activationZeros(c * V), gw = k.zeros(w1.count), gb = k.zeros(c2)
            k.b.conv1Forward(input: k.a(x), inChannels: c, voxels: V, weight: k.t(w1), bias: k.t(b1), output: y, outChannels: c2)
            k.b.conv1Backward(input: k.a(x), inChannels: c, voxels: V, weight: k.t(w1), gradOutput: k.a(dy2), outChannels: c2,
                              gradInput: gx, accumulate: false, gradWeight: gw, gradBias: gb)
            return [("output", y), ("gradInput", gx), ("gradWeight", gw), ("gradBias", gb)]
        }
        // A GPU streams batch norm's rows 16 bytes at a time where they are aligned; tensors one element into their
        // buffers (skew 1) take its element-by-element path.
        for (relu, skew) in [(false, 0), (true, 0), (true, 1)] {
            agree("batch norm train relu=\(relu)" + (skew == 0 ? "" : " unaligned")) { k in
                let y = k.activationZeros(c * V, skew: skew), rm = k.t(runMean), rv = k.t(runVar)
                let saved = BatchNormSaved(k.zeros(BatchNormSaved.count(channels: c)), channels: c)
                let xt = k.a(x, skew: skew), g = k.t(gamma)
                k.b.batchNormTrainForward(input: xt, output: y, channels: c, voxels: V, gamma: g, beta: k.t(beta),
                                          runningMean: rm, runningVar: rv, saved: saved, momentum: 0.1, epsilon: 1e-5,
                                          relu: relu)
                let again = k.activationZeros(c * V, skew: skew)
                k.b.batchNormRecompute(input: xt, output: again, channels: c, voxels: V, saved: saved, relu: relu)
                let gx = k.activationZeros(c * V, skew: skew), gg = k.zeros(c), gb = k.zeros(c)
                k.b.batchNormBackward(input: xt, gradOutput: k.a(dy, skew: skew), gradInput: gx, channels: c, voxels: V,
                                      gamma: g, saved: saved, gradGamma: gg, gradBeta: gb, relu: relu, accumulate: false)
                return [("output", y), ("recomputed output", again), ("running mean", rm), ("running var", rv),
                        ("gradInput", gx), ("gradGamma", gg), ("gradBeta", gb)]
            }
        }
        agree("batch norm eval") { k in
            let y = k.activationZeros(c * V)
            k.b.batchNormEvalForward(input: k.a(x), output: y, channels: c, voxels: V, gamma: k.t(gamma), beta: k.t(beta),
                                     runningMean: k.t(runMean), runningVar: k.t(runVar), epsilon: 1e-5, relu: true)
            return [("output", y)]
        }
        agree("relu") { k in
            let y = k.a(x), g = k.a(dy)
            k.b.reluForward(y)
            k.b.reluBackward(output: y, grad: g)
            return [("output", y), ("grad", g)]
        }
        agree("max pool") { k in
            let y = k.activationZeros(c * e.halved.voxels), g = k.a(base), xt = k.a(x)
            k.b.maxPool2Forward(input: xt, output: y, channels: c, extent: e)
            k.b.maxPool2Backward(input: xt, output: y, gradOutput: k.a(Array(dy.prefix(c * e.halved.voxels))), gradInput: g,
                                 channels: c, extent: e, accumulate: true)
            return [("output", y), ("gradInput", g)]
        }
        agree("upsample") { k in
            let small = e.halved, y = k.activationZeros(c * V), g = k.a(Array(base.prefix(c * small.voxels)))
            k.b.upsample2Forward(input: k.a(Array(x.prefix(c * small.voxels))), output: y, channels: c, extent: small)
            k.b.upsample2Backward(gradOutput: k.a(dy), gradInput: g, channels: c, extent: small, accumulate: true)
            return [("output", y), ("gradInput", g)]
        }
        agree("global max") { k in
            let y = k.activationZeros(c), g = k.activationZeros(c * V), xt = k.a(x)
            k.b.globalMaxForward(input: xt, output: y, channels: c, voxels: V)
            k.b.globalMaxBackward(input: xt, output: y, gradOutput: k.a(Array(dy.prefix(c))), gradInput: g,
                                  channels: c, voxels: V, accumulate: false)
            return [("output", y), ("gradInput", g)]
        }
        agree("sigmoid") { k in
            let y = k.activationZeros(c * V)
            k.b.sigmoidForward(input: k.a(x), output: y)
            return [("output", y)]
        }
        agree("training loss") { k in
            let g = k.activationZeros(V), gc = k.activationZeros(1)
            k.b.trainingLoss(prob: k.a(prob), target: k.t(target), weight: k.t(weight), lambda: 0.1, gradLogit: g,
                             clsLogit: k.a([0.7]), completenessLabel: 1, clsGradLogit: gc)
            let s = k.b.readTrainingScalars()
            return [("gradLogit", g), ("completeness gradient", gc),
                    ("fp, fn", k.t([Float(s.falsePositive), Float(s.falseNegative)])),
                    ("completeness, cross-entropy", k.t([Float(s.completeness), Float(s.classification)])),
                    ("predicted, reference, both", k.t([Float(s.predicted), Float(s.reference), Float(s.intersection)]))]
        }
        agree("completeness head") { k in
            // Both labels, and logits whose probability rounds to 1 (the log of 1 - c clamped at -100) or nearly 0.
            var values: [Float] = []
            for (logit, label) in [(Float(-3.2), Float(0)), (0.7, 1), (0.7, 0), (60, 0), (60, 1), (-60, 1)] {
                let gc = k.activationZeros(1)
                k.b.trainingLoss(prob: k.a(prob), target: k.t(target), weight: k.t(weight), lambda: 0.1,
                                 gradLogit: k.activationZeros(V), clsLogit: k.a([logit]), completenessLabel: label, clsGradLogit: gc)
                let s = k.b.readTrainingScalars()
                // The gradient as the candidate holds it (rounded like its activations), here in a float32 tensor.
                values += [Float(s.completeness), Float(s.classification)] + k.read(gc).map(k.narrow)
            }
            return [("completeness, cross-entropy, gradient", k.t(values))]
        }
        agree("segmentation volumes") { k in
            // A box of side 12 reaching out of the scan on three sides; a fragment accepted twice (labels 1, then 2
            // where the second box's fragment is still unlabelled), then the memory under the first box.
            let scan = SIMD3(e.w, e.h, e.d), side = boxSide, n = side * side * side
            let box = PatchBox(scan: scan, origin: SIMD3(-3, e.h - 7, e.d / 2), side: side)
            let second = PatchBox(scan: scan, origin: SIMD3(2, e.h - 9, e.d / 2 - 3), side: side)
            // The patches and probabilities are a network's activations (validation segments with the training
            // network); the scan, the mask and the labels are not.
            let patch = k.activationZeros(n), memory = k.activationZeros(n)
            k.b.extractPatch(k.t(Array(x.prefix(V))), box: box, fill: -2, into: patch)
            let mask = k.zeros(PatchBox.maskElements(voxels: V)), labels = k.zeros(V)
            let p1 = k.a(Array(boxProb.prefix(n))), p2 = k.a(Array(boxProb.suffix(n)))
            let before = k.b.fragmentSums(p1, box: box, unlabelledIn: nil), hash0 = k.b.maskHash(mask, box: box)
            k.b.acceptFragment(p1, box: box, mask: mask, labels: labels, label: 1)
            let unlabelled = k.b.fragmentSums(p2, box: second, unlabelledIn: labels)
            k.b.acceptFragment(p2, box: second, mask: mask, labels: labels, label: 2)
            let hash1 = k.b.maskHash(mask, box: box)
            k.b.extractMaskPatch(mask, box: box, into: memory)
            let labelFloats = k.read(labels).map { Float($0.bitPattern) }
            // Hashes as their top 24 bits (exact in a float): equal on both backends, and changed by the accept.
            let scalars = [before.count, Int(before.sum.x), Int(before.sum.y), Int(before.sum.z), unlabelled.count,
                           Int(unlabelled.sum.z), Int(hash0 >> 40), Int(hash1 >> 40)].map(Float.init)
            return [("image patch", patch), ("memory patch", memory), ("labels", k.t(labelFloats)), ("sums and hashes", k.t(scalars))]
        }
        agree("sum of squares") { k in
            [("sum", k.t([Float(k.b.sumOfSquares(k.t(x)))]))]
        }
        agree("adam") { k in
            let p = k.t(x), m = k.t(Array(base)), v = k.t(base.map { $0 * $0 })
            for step in 1...3 {
                k.b.adamStep(parameters: p, gradients: k.t(dy), firstMoment: m, secondMoment: v,
                             learningRate: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, step: step)
            }
            k.b.scale(p, by: 0.5)
            return [("parameters", p), ("first moment", m), ("second moment", v)]
        }
        return out
    }

    /// Upload and read helpers over one backend: `t` and `zeros` make float32 tensors (parameters, statistics,
    /// volumes), `a` and `activationZeros` activations (`allocateActivations`), whose values are rounded to the
    /// candidate's `activations` format on both backends.
    struct Kit {
        let b: any ComputeBackend
        let activations: ElementFormat
        init(_ b: any ComputeBackend, activations: ElementFormat) { self.b = b; self.activations = activations }
        func zeros(_ n: Int) -> TensorRef { TensorRef(buffer: b.allocate(n)) }
        func t(_ v: [Float]) -> TensorRef { filled(zeros(v.count), v) }
        /// `skew` elements into its buffer (rows off the buffer's alignment).
        func activationZeros(_ n: Int, skew: Int = 0) -> TensorRef {
            TensorRef(buffer: b.allocateActivations(n + skew), offset: skew, count: n)
        }
        func a(_ v: [Float], skew: Int = 0) -> TensorRef { filled(activationZeros(v.count, skew: skew), v.map(narrow)) }
        /// A value as the candidate holds an activation.
        func narrow(_ v: Float) -> Float { activations == .bf16 ? BFloat16.round(v) : v }
        private func filled(_ r: TensorRef, _ v: [Float]) -> TensorRef {
            v.withUnsafeBufferPointer { if let p = $0.baseAddress { b.upload(p, to: r) } }
            return r
        }
        func read(_ r: TensorRef) -> [Float] {
            [Float](unsafeUninitializedCapacity: r.count) { buf, n in
                if r.count > 0 { b.download(r, to: buf.baseAddress!) }
                n = r.count
            }
        }
    }
}
