import COpenBLAS
import Foundation
import IFCNSupport

/// The CPU backend: OpenBLAS sgemm for convolutions, hand-written loops on all cores elsewhere.
/// Open so tests can plant a faulty kernel (reluForward) and show the backend checks catch it.
open class CPUBackend: ComputeBackend {
    public var name: String {
        let parts = [convolutionAlgorithm.map { "\($0.rawValue) convolutions" }, bfloat16Inference ? "bfloat16 inference, emulated" : nil,
                     emulatesGPUMath ? "GPU \(emulatedGPUMath.rawValue) convolutions, emulated" : nil,
                     emulatedActivations == .bf16 ? "GPU bf16 activations, emulated" : nil]
            .compactMap { $0 }
        return parts.isEmpty ? "cpu" : "cpu (\(parts.joined(separator: ", ")))"
    }
    public let threads: Int
    /// One convolution algorithm for every convolution it handles (tests run the fixtures once per
    /// algorithm); nil: IFCN_CONV_ALGORITHM if set, else the per-shape rule.
    public let convolutionAlgorithm: ConvolutionAlgorithm?
    /// Inference convolutions with bfloat16 operands and float32 sums, emulated (CPUBFloat16Emulation.swift);
    /// training is unaffected. Default: `IFCN_EMULATE_BF16`.
    public let bfloat16Inference: Bool
    /// Every 3x3x3 convolution, training and inference, in the CUDA backend's reduced-precision math (tf32 or bf16),
    /// emulated (CPUGPUMathEmulation.swift); `.fp32`: the CPU's own float32. Default: `IFCN_EMULATE_GPU_MATH`.
    public let emulatedGPUMath: GPUMath
    /// The format a training network's activations are held in, emulating the CUDA backend's `--gpu-activations`
    /// (with bf16 math only, as there). Default: `IFCN_EMULATE_GPU_ACTIVATIONS`.
    public let emulatedActivations: ElementFormat
    let scratch: ScratchPool
    let weightScratch: ScratchPool
    /// The scalars of the last `trainingLoss` (computed at once: the CPU works synchronously).
    private var trainingScalars: TrainingScalars?

    /// `threads` compute threads (default: all cores). OpenBLAS itself runs single-threaded
    /// inside our own parallel regions.
    public init(threads: Int? = nil, convolutionAlgorithm: ConvolutionAlgorithm? = nil,
                bfloat16Inference: Bool = BFloat16.processEmulation, emulatedGPUMath: GPUMath = GPUMath.processEmulation,
                emulatedActivations: ElementFormat = ElementFormat.processEmulation) {
        let n = threads ?? activeCoreCount
        self.threads = max(1, n)
        self.convolutionAlgorithm = convolutionAlgorithm
        self.bfloat16Inference = bfloat16Inference
        precondition(!(bfloat16Inference && emulatedGPUMath != .fp32), "two emulations of reduced precision at once")
        self.emulatedGPUMath = emulatedGPUMath
        precondition(emulatedActivations == .fp32 || emulatedGPUMath == .bf16, "bfloat16 activations without bf16 math")
        self.emulatedActivations = emulatedActivations
        scratch = ScratchPool(threads: self.threads)
        weightScratch = ScratchPool(threads: self.threads)
        openblas_set_num_threads(1)
    }

    public func allocate(_ count: Int) -> any DeviceBuffer { CPUBuffer(count: count) }

    public func allocateActivations(_ count: Int) -> any DeviceBuffer { CPUBuffer(count: count, format: emulatedActivations) }

    /// Rounds each of `tensors` that is held in bfloat16 (emulated) to bfloat16, as the CUDA backend stores what a
    /// kernel writes there: every kernel that writes activations ends with it.
    func roundToFormat(_ tensors: TensorRef?...) {
        for case let t? in tensors where t.buffer.format == .bf16 {
            BFloat16.roundInPlace(t.host, count: t.count, threads: threads)
        }
    }

    public func synchronize() {}

    /// The CPU's upload is one copy already: nothing to stage.
    public var stagesUploads: Bool { false }
    public func stageUpload(_ source: UnsafePointer<Float>, count: Int) -> StagedUpload? { nil }
    public func upload(_ staged: StagedUpload, to destination: TensorRef) {
        preconditionFailure("the CPU backend stages no uploads")
    }

    public func makeClock() -> any BackendClock { HostClock() }

    public func upload(_ source: UnsafePointer<Float>, to destination: TensorRef) {
        destination.host.update(from: source, count: destination.count)
        roundToFormat(destination)
    }

    public func download(_ source: TensorRef, to destination: UnsafeMutablePointer<Float>) {
        destination.update(from: source.host, count: source.count)
    }

    public func withHostMemory<R>(_ tensor: TensorRef, _ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        try body(tensor.host)
    }

    public func fill(_ tensor: TensorRef, value: Float) {
        defer { roundToFormat(tensor) }
        let p = tensor.host, n = tensor.count
        let parts = n > 1 << 16 ? threads : 1
        parallelFor(parts: parts) { t in
            let r = partRange(t, of: parts, total: n)
            if value == 0 {
                memset(p + r.lowerBound, 0, r.count * 4)
            } else {
                (p + r.lowerBound).update(repeating: value, count: r.count)
            }
        }
    }

    public func copy(_ source: TensorRef, to destination: TensorRef) {
        precondition(source.count == destination.count, "copy of unequal sizes")
        memmove(destination.host, source.host, source.count * 4)
    }

    open func reluForward(_ tensor: TensorRef) {
        defer { roundToFormat(tensor) }
        let p = tensor.host, n = tensor.count
        let parts = n > 1 << 15 ? threads : 1
        parallelFor(parts: parts) { t in
            for i in partRange(t, of: parts, total: n) { p[i] = max(p[i], 0) }
        }
    }

    public func reluBackward(output: TensorRef, grad: TensorRef) {
        defer { roundToFormat(grad) }
        let y = output.host, g = grad.host, n = grad.count
        let parts = n > 1 << 15 ? threads : 1
        parallelFor(parts: parts) { t in
            for i in partRange(t, of: parts, total: n) where !(y[i] > 0) { g[i] = 0 }
        }
    }

    public func sigmoidForward(input: TensorRef, output: TensorRef) {
        defer { roundToFormat(output) }
        let x = input.host, y = output.host, n = input.count
        let parts = n > 1 << 14 ? threads : 1
        parallelFor(parts: parts) { t in
            for i in partRange(t, of: parts, total: n) { y[i] = 1 / (1 + expf(-x[i])) }
        }
    }

    public func trainingLoss(prob: TensorRef, target: TensorRef, weight: TensorRef, lambda: Float, gradLogit: TensorRef,
                             clsLogit: TensorRef, completenessLabel: Float, clsGradLogit: TensorRef) {
        defer { roundToFormat(gradLogit, clsGradLogit) }
        let (fp, fn) = segmentationLoss(prob: prob, target: target, weight: weight, lambda: lambda, gradLogit: gradLogit)
        let head = TrainingScalars.completenessTerms(logit: clsLogit.host[0], label: completenessLabel)
        clsGradLogit.host[0] = head.gradient
        let overlap = overlapCounts(prob: prob, target: target)
        trainingScalars = TrainingScalars(falsePositive: fp, falseNegative: fn, completeness: head.probability,
                                          classification: head.crossEntropy, predicted: overlap.predicted,
                                          reference: overlap.reference, intersection: overlap.intersection)
    }

    public func readTrainingScalars() -> TrainingScalars {
        guard let trainingScalars else { preconditionFailure("readTrainingScalars before any trainingLoss") }
        return trainingScalars
    }

    /// (lambda * fp, fn) in float64, and the gradient of the logits.
    private func segmentationLoss(prob: TensorRef, target: TensorRef, weight: TensorRef, lambda: Float,
                                  gradLogit: TensorRef) -> (Double, Double) {
        let s = prob.host, tg = target.host, w = weight.host, g = gradLogit.host, n = prob.count
        // A fixed number of pieces, summed in order: the loss does not depend on the thread count.
        // The pieces are spread over `threads` parts (64 concurrent iterations cost more than the loss itself at
        // small patches); the partial sums on the stack, so the step allocates nothing.
        let pieces = 64
        return withUnsafeTemporaryAllocation(of: Double.self, capacity: 2 * pieces) { sums in
            let fpp = sums.baseAddress!, fnp = fpp + pieces
            let parts = n > 1 << 14 ? min(threads, pieces) : 1
            parallelFor(parts: parts) { t in
                for k in partRange(t, of: parts, total: pieces) {
                    var a = 0.0, b = 0.0
                    for i in partRange(k, of: pieces, total: n) {
                        let si = s[i], ti = tg[i], wi = w[i]
                        a += Double(wi * (1 - ti) * si)
                        b += Double(wi * ti * (1 - si))
                        g[i] = wi * (lambda * (1 - ti) - ti) * si * (1 - si)
                    }
                    fpp[k] = a; fnp[k] = b
                }
            }
            var fp = 0.0, fn = 0.0
            for k in 0..<pieces { fp += fpp[k]; fn += fnp[k] }
            return (Double(lambda) * fp, fn)
        }
    }

    private func overlapCounts(prob: TensorRef, target: TensorRef) -> (predicted: Int, reference: Int, intersection: Int) {
        precondition(prob.count == target.count, "overlap of unequal sizes")
        let s = prob.host, t = target.host
        var a = 0, b = 0, both = 0
        for i in 0..<prob.count {
            let si = s[i] > 0.5, ti = t[i] > 0.5
            if si { a += 1 }
            if ti { b += 1 }
            if si && ti { both += 1 }
        }
        return (a, b, both)
    }

    public func adamStep(parameters: TensorRef, gradients: TensorRef, firstMoment: TensorRef, secondMoment: TensorRef,
                         learningRate: Float, beta1: Float, beta2: Float, epsilon: Float, step: Int) {
        let p = parameters.host, g = gradients.host, m = firstMoment.host, v = secondMoment.host
        let n = parameters.count
        let bc1 = 1 - pow(Double(beta1), Double(step))
        let bc2 = 1 - pow(Double(beta2), Double(step))
        let stepSize = Float(Double(learningRate) / bc1)
        let bc2Sqrt = Float(bc2.squareRoot())
        let parts = n > 1 << 14 ? threads : 1
        parallelFor(parts: parts) { t in
            for i in partRange(t, of: parts, total: n) {
                let gi = g[i]
                m[i] += (gi - m[i]) * (1 - beta1)
                v[i] = v[i] * beta2 + (1 - beta2) * gi * gi
                let denom = v[i].squareRoot() / bc2Sqrt + epsilon
                p[i] -= stepSize * (m[i] / denom)
            }
        }
    }

    public func scale(_ tensor: TensorRef, by factor: Float) {
        let p = tensor.host, n = tensor.count
        let parts = n > 1 << 15 ? threads : 1
        parallelFor(parts: parts) { t in
            for i in partRange(t, of: parts, total: n) { p[i] *= factor }
        }
    }

    public func sumOfSquares(_ tensor: TensorRef) -> Double {
        let buf = tensor.host, count = tensor.count
        let block = 1 << 16
        var partial = [Double](repeating: 0, count: (count + block - 1) / block)
        partial.withUnsafeMutableBufferPointer { out in
            parallelBlocks(count: count, blockSize: block) { b, range in  // each block writes its own slot
                var sum = 0.0
                for i in range { let x = Double(buf[i]); sum += x * x }
                out[b] = sum
            }
        }
        return partial.reduce(0, +)
    }
}
