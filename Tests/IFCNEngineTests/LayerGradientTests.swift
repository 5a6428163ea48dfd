import IFCNCompute
import IFCNEngine
import XCTest

/// Every layer's backward against central finite differences on small shapes, once per
/// available backend (TestBackends).
final class LayerGradientTests: XCTestCase {
    var b: any ComputeBackend = TestBackends.available[0]
    var h: Host { Host(backend: b) }
    let e = Extent3(4, 5, 6)

    func checkConv3x3x3DataWeightAndBias() {
        var rng = SeededGenerator(seed: 1)
        let cin = 3, cout = 2, V = e.voxels
        let x = randomValues(cin * V, &rng), w = randomValues(cout * cin * 27, &rng, scale: 0.3)
        let bias = randomValues(cout, &rng), r = randomValues(cout * V, &rng)
        func f(_ x: [Float], _ w: [Float], _ bias: [Float]) -> Double {
            let y = h.zeros(cout * V)
            b.conv3Forward(input: h.tensor(x), inChannels: cin, extent: e, weight: h.tensor(w), bias: h.tensor(bias),
                           output: y, outChannels: cout)
            return dot(h.read(y), r)
        }
        let gx = h.tensor([Float](repeating: 0.25, count: cin * V))
        b.conv3BackwardData(gradOutput: h.tensor(r), outChannels: cout, extent: e, weight: h.tensor(w),
                            gradInput: gx, inChannels: cin, accumulate: true)
        let gw = h.zeros(w.count), gb = h.zeros(cout)
        b.conv3BackwardWeight(input: h.tensor(x), inChannels: cin, extent: e, gradOutput: h.tensor(r), outChannels: cout,
                              gradWeight: gw, gradBias: gb)
        assertGradient("conv3 data (accumulated onto 0.25)", at: x, analytic: h.read(gx).map { $0 - 0.25 }) { f($0, w, bias) }
        assertGradient("conv3 weight", at: w, analytic: h.read(gw)) { f(x, $0, bias) }
        assertGradient("conv3 bias", at: bias, analytic: h.read(gb)) { f(x, w, $0) }
    }

    func checkConv1x1DataWeightAndBias() {
        var rng = SeededGenerator(seed: 2)
        let cin = 4, cout = 3, V = e.voxels
        let x = randomValues(cin * V, &rng), w = randomValues(cout * cin, &rng)
        let bias = randomValues(cout, &rng), r = randomValues(cout * V, &rng)
        func f(_ x: [Float], _ w: [Float], _ bias: [Float]) -> Double {
            let y = h.zeros(cout * V)
            b.conv1Forward(input: h.tensor(x), inChannels: cin, voxels: V, weight: h.tensor(w), bias: h.tensor(bias),
                           output: y, outChannels: cout)
            return dot(h.read(y), r)
        }
        let gx = h.zeros(cin * V), gw = h.zeros(w.count), gb = h.zeros(cout)
        b.conv1Backward(input: h.tensor(x), inChannels: cin, voxels: V, weight: h.tensor(w), gradOutput: h.tensor(r),
                        outChannels: cout, gradInput: gx, accumulate: false, gradWeight: gw, gradBias: gb)
        assertGradient("conv1 data", at: x, analytic: h.read(gx)) { f($0, w, bias) }
        assertGradient("conv1 weight", at: w, analytic: h.read(gw)) { f(x, $0, bias) }
        assertGradient("conv1 bias", at: bias, analytic: h.read(gb)) { f(x, w, $0) }
    }

    func checkBatchNorm(relu: Bool) {
        var rng = SeededGenerator(seed: relu ? 3 : 4)
        let c = 3, V = e.voxels
        let x = randomValues(c * V, &rng), gamma = (0..<c).map { _ in Float(rng.uniform(0.5, 1.5)) }
        let beta = randomValues(c, &rng, scale: 0.3), r = randomValues(c * V, &rng)
        let saved = savedNorm(c)
        func f(_ x: [Float], _ gamma: [Float], _ beta: [Float]) -> Double {
            let y = h.zeros(c * V)
            b.batchNormTrainForward(input: h.tensor(x), output: y, channels: c, voxels: V, gamma: h.tensor(gamma),
                                    beta: h.tensor(beta), runningMean: h.zeros(c), runningVar: h.zeros(c),
                                    saved: saved, momentum: 0.1, epsilon: 1e-5, relu: relu)
            return dot(h.read(y), r)
        }
        let xT = h.tensor(x), y = h.zeros(c * V)
        b.batchNormTrainForward(input: xT, output: y, channels: c, voxels: V, gamma: h.tensor(gamma), beta: h.tensor(beta),
                                runningMean: h.zeros(c), runningVar: h.zeros(c), saved: saved, momentum: 0.1,
                                epsilon: 1e-5, relu: relu)
        let gx = h.zeros(c * V), gg = h.zeros(c), gb = h.zeros(c)
        b.batchNormBackward(input: xT, gradOutput: h.tensor(r), gradInput: gx, channels: c, voxels: V,
                            gamma: h.tensor(gamma), saved: saved, gradGamma: gg, gradBeta: gb, relu: relu, accumulate: false)
        assertGradient("bn data relu=\(relu)", at: x, analytic: h.read(gx), eps: 1e-3, tolerance: 2e-2) { f($0, gamma, beta) }
        assertGradient("bn gamma", at: gamma, analytic: h.read(gg), eps: 1e-3) { f(x, $0, beta) }
        assertGradient("bn beta", at: beta, analytic: h.read(gb), eps: 1e-3) { f(x, gamma, $0) }
    }

    func checkBatchNormTrain() { checkBatchNorm(relu: false) }
    func checkBatchNormTrainWithReLU() { checkBatchNorm(relu: true) }

    /// Room for what a batch norm of `c` channels saves.
    func savedNorm(_ c: Int) -> BatchNormSaved { BatchNormSaved(h.zeros(BatchNormSaved.count(channels: c)), channels: c) }

    /// A training step keeps neither batch norm's output for the backward pass nor reads it there: the output is
    /// recomputed from the input and what the forward pass saved, and must come back bit for bit (also in place,
    /// as `ComputeBackend` allows), and the fused ReLU's mask, taken from the input, must be exactly where the
    /// output is positive: the gradient with the ReLU equals the one without it of the gradient masked by the
    /// output, bit for bit. A negative gamma flips which side the ReLU keeps.
    func checkBatchNormRecomputedOutputAndReLUMask() {
        var rng = SeededGenerator(seed: 6)
        let c = 3, V = e.voxels
        let x = randomValues(c * V, &rng)
        let gamma: [Float] = [0.7, -1.3, 1], beta: [Float] = [0.1, 0.2, 0]
        let dy = randomValues(c * V, &rng)
        for relu in [false, true] {
            let xT = h.tensor(x), y = h.zeros(c * V), saved = savedNorm(c), label = "relu=\(relu) on \(b.name)"
            b.batchNormTrainForward(input: xT, output: y, channels: c, voxels: V, gamma: h.tensor(gamma), beta: h.tensor(beta),
                                    runningMean: h.zeros(c), runningVar: h.zeros(c), saved: saved, momentum: 0.1,
                                    epsilon: 1e-5, relu: relu)
            let forward = h.read(y), again = h.zeros(c * V), inPlace = h.tensor(x)
            b.batchNormRecompute(input: xT, output: again, channels: c, voxels: V, saved: saved, relu: relu)
            b.batchNormRecompute(input: inPlace, output: inPlace, channels: c, voxels: V, saved: saved, relu: relu)
            XCTAssertEqual(h.read(again).map(\.bitPattern), forward.map(\.bitPattern), label)
            XCTAssertEqual(h.read(inPlace).map(\.bitPattern), forward.map(\.bitPattern), label)
            guard relu else { continue }
            XCTAssertTrue(forward.contains(0) && forward.contains { $0 > 0 }, label)
            func backward(_ g: [Float], relu: Bool) -> [[Float]] {
                let gx = h.zeros(c * V), gg = h.zeros(c), gb = h.zeros(c)
                b.batchNormBackward(input: xT, gradOutput: h.tensor(g), gradInput: gx, channels: c, voxels: V,
                                    gamma: h.tensor(gamma), saved: saved, gradGamma: gg, gradBeta: gb, relu: relu,
                                    accumulate: false)
                return [h.read(gx), h.read(gg), h.read(gb)]
            }
            let masked = zip(dy, forward).map { $1 > 0 ? $0 : 0 }
            let fused = backward(dy, relu: true), plain = backward(masked, relu: false)
            for (a, p) in zip(fused, plain) { XCTAssertEqual(a.map(\.bitPattern), p.map(\.bitPattern), label) }
        }
    }

    func checkBatchNormRunningStatisticsFollowPyTorch() {
        let x: [Float] = [1, 2, 3, 6]  // mean 3, biased var 3.5, unbiased 14/3
        let rm = h.tensor([0.5]), rv = h.tensor([2]), saved = savedNorm(1), y = h.zeros(4)
        b.batchNormTrainForward(input: h.tensor(x), output: y, channels: 1, voxels: 4, gamma: h.tensor([1]),
                                beta: h.tensor([0]), runningMean: rm, runningVar: rv, saved: saved, momentum: 0.1,
                                epsilon: 1e-5, relu: false)
        XCTAssertEqual(h.read(rm)[0], 0.9 * 0.5 + 0.1 * 3, accuracy: 1e-6)
        XCTAssertEqual(h.read(rv)[0], 0.9 * 2 + 0.1 * 14 / 3, accuracy: 1e-6)
        XCTAssertEqual(h.read(saved.invStd)[0], Float(1 / (3.5 + 1e-5).squareRoot()), accuracy: 1e-6)
    }

    func checkReLUMaxPoolUpsampleGlobalMax() {
        var rng = SeededGenerator(seed: 5)
        let c = 2, E = Extent3(4, 4, 6), V = E.voxels, H = E.halved
        let x = randomValues(c * V, &rng)
        // max pool
        let rp = randomValues(c * H.voxels, &rng)
        func pool(_ x: [Float]) -> Double {
            let y = h.zeros(c * H.voxels)
            b.maxPool2Forward(input: h.tensor(x), output: y, channels: c, extent: E)
            return dot(h.read(y), rp)
        }
        let y = h.zeros(c * H.voxels)
        b.maxPool2Forward(input: h.tensor(x), output: y, channels: c, extent: E)
        let gx = h.zeros(c * V)
        b.maxPool2Backward(input: h.tensor(x), output: y, gradOutput: h.tensor(rp), gradInput: gx, channels: c,
                           extent: E, accumulate: false)
        assertGradient("maxpool", at: x, analytic: h.read(gx), samples: 200, eps: 1e-3) { pool($0) }
        // upsample (input at low resolution H)
        let xl = randomValues(c * H.voxels, &rng), ru = randomValues(c * V, &rng)
        func up(_ x: [Float]) -> Double {
            let y = h.zeros(c * V)
            b.upsample2Forward(input: h.tensor(x), output: y, channels: c, extent: H)
            return dot(h.read(y), ru)
        }
        let gl = h.zeros(c * H.voxels)
        b.upsample2Backward(gradOutput: h.tensor(ru), gradInput: gl, channels: c, extent: H, accumulate: false)
        assertGradient("upsample", at: xl, analytic: h.read(gl)) { up($0) }
        // global max
        let rg = randomValues(c, &rng)
        func gmax(_ x: [Float]) -> Double {
            let y = h.zeros(c)
            b.globalMaxForward(input: h.tensor(x), output: y, channels: c, voxels: V)
            return dot(h.read(y), rg)
        }
        let g = h.zeros(c), gg = h.zeros(c * V)
        b.globalMaxForward(input: h.tensor(x), output: g, channels: c, voxels: V)
        b.globalMaxBackward(input: h.tensor(x), output: g, gradOutput: h.tensor(rg), gradInput: gg, channels: c,
                            voxels: V, accumulate: false)
        assertGradient("global max", at: x, analytic: h.read(gg), samples: V * c, eps: 1e-3) { gmax($0) }
        // ReLU (in place): backward masks by the output
        let rr = randomValues(c * V, &rng)
        func relu(_ x: [Float]) -> Double {
            let t = h.tensor(x); b.reluForward(t); return dot(h.read(t), rr)
        }
        let t = h.tensor(x); b.reluForward(t)
        let gr = h.tensor(rr); b.reluBackward(output: t, grad: gr)
        assertGradient("relu", at: x, analytic: h.read(gr), eps: 1e-3) { relu($0) }
    }

    func checkSigmoidAndWeightedLossGradient() {
        var rng = SeededGenerator(seed: 6)
        let n = 300
        let z = randomValues(n, &rng, scale: 2)
        let t = (0..<n).map { _ in Float(rng.uniform() < 0.4 ? 1 : 0) }
        let w = (0..<n).map { _ in Float(rng.uniform(1, 9)) }
        let s = h.zeros(n), g = h.zeros(n)
        b.sigmoidForward(input: h.tensor(z), output: s)
        b.trainingLoss(prob: s, target: h.tensor(t), weight: h.tensor(w), lambda: 0.1, gradLogit: g,
                       clsLogit: h.tensor([0.3]), completenessLabel: 1, clsGradLogit: h.zeros(1))
        let scalars = b.readTrainingScalars()
        let probs = h.read(s)
        var expect = 0.0
        for i in 0..<n { expect += 0.1 * Double(w[i] * (1 - t[i]) * probs[i]) + Double(w[i] * t[i] * (1 - probs[i])) }
        XCTAssertEqual(scalars.falsePositive + scalars.falseNegative, expect, accuracy: 1e-3)
        XCTAssertEqual(scalars.predicted, probs.filter { $0 > 0.5 }.count)
        XCTAssertEqual(scalars.reference, t.filter { $0 > 0.5 }.count)
        XCTAssertEqual(scalars.intersection, zip(probs, t).filter { $0 > 0.5 && $1 > 0.5 }.count)
        assertGradient("sigmoid+loss", at: z, analytic: h.read(g), eps: 1e-3, { z in
            // the kernel's loss is linear in sigmoid, evaluate in float64 for a clean difference quotient
            var l = 0.0
            for i in 0..<n {
                let p = 1 / (1 + exp(-Double(z[i])))
                l += 0.1 * Double(w[i]) * Double(1 - t[i]) * p + Double(w[i]) * Double(t[i]) * (1 - p)
            }
            return l
        })
    }

    /// The completeness head's cross-entropy and its gradient at the logit, both computed by the backend: the
    /// gradient against a difference quotient of the backend's own loss.
    func checkCompletenessLossGradient() {
        let n = 8
        let prob = h.tensor([Float](repeating: 0.5, count: n)), zero = h.tensor([Float](repeating: 0, count: n))
        func head(_ logit: Float, _ label: Float) -> (loss: Double, gradient: Float) {
            let gc = h.zeros(1)
            b.trainingLoss(prob: prob, target: zero, weight: zero, lambda: 0.1, gradLogit: h.zeros(n),
                           clsLogit: h.tensor([logit]), completenessLabel: label, clsGradLogit: gc)
            return (b.readTrainingScalars().classification, h.read(gc)[0])
        }
        for (logit, label) in [(Float(-1.7), Float(0)), (-1.7, 1), (0.4, 0), (2.5, 1)] {
            let eps: Float = 1e-2
            let numeric = (head(logit + eps, label).loss - head(logit - eps, label).loss) / Double(2 * eps)
            let analytic = head(logit, label).gradient
            XCTAssertEqual(Double(analytic), numeric, accuracy: 1e-3 * max(1, abs(numeric)), "logit \(logit), label \(label)")
            XCTAssertEqual(head(logit, label).loss, TrainingScalars.completenessTerms(logit: logit, label: label).crossEntropy,
                           accuracy: 1e-12)
        }
        // A probability that rounds to 1 gives the clamped log: -(log(1 - c)) = 100, as PyTorch's BCELoss.
        XCTAssertEqual(head(60, 0).loss, 100)
    }

    func checkAdamMatchesClosedForm() {
        let p = h.tensor([1, -2, 3]), g = h.tensor([0.5, -1, 0]), m = h.zeros(3), v = h.zeros(3)
        for step in 1...2 {
            b.adamStep(parameters: p, gradients: g, firstMoment: m, secondMoment: v, learningRate: 0.01,
                       beta1: 0.9, beta2: 0.999, epsilon: 1e-8, step: step)
        }
        // with a constant gradient, m_hat = g and v_hat = g^2: each step moves by lr * sign(g)
        let out = h.read(p)
        XCTAssertEqual(out[0], 1 - 0.02, accuracy: 1e-5)
        XCTAssertEqual(out[1], -2 + 0.02, accuracy: 1e-5)
        XCTAssertEqual(out[2], 3, accuracy: 1e-7)
    }

    /// Runs `body` with `b` set to each available backend in turn.
    func forEachBackend(_ body: () -> Void) {
        for backend in TestBackends.available { b = backend; body() }
    }

    func testConv3x3x3DataWeightAndBias() { forEachBackend(checkConv3x3x3DataWeightAndBias) }
    func testConv1x1DataWeightAndBias() { forEachBackend(checkConv1x1DataWeightAndBias) }
    func testBatchNormTrain() { forEachBackend(checkBatchNormTrain) }
    func testBatchNormTrainWithReLU() { forEachBackend(checkBatchNormTrainWithReLU) }
    func testBatchNormRecomputedOutputAndReLUMask() { forEachBackend(checkBatchNormRecomputedOutputAndReLUMask) }
    func testBatchNormRunningStatisticsFollowPyTorch() { forEachBackend(checkBatchNormRunningStatisticsFollowPyTorch) }
    func testReLUMaxPoolUpsampleGlobalMax() { forEachBackend(checkReLUMaxPoolUpsampleGlobalMax) }
    func testSigmoidAndWeightedLossGradient() { forEachBackend(checkSigmoidAndWeightedLossGradient) }
    func testCompletenessLossGradient() { forEachBackend(checkCompletenessLossGradient) }
    func testAdamMatchesClosedForm() { forEachBackend(checkAdamMatchesClosedForm) }

}
