import Foundation

/// What a backend call computes, as a profile groups its time.
public enum KernelKind: String, CaseIterable, Sendable {
    /// 3x3x3 convolutions, training and inference (with the batch norm an inference pass fuses into them).
    case convolutionForward = "conv3 forward"
    case convolutionBackwardData = "conv3 backward data"
    case convolutionBackwardFilter = "conv3 backward filter"
    /// Batch norm in training (statistics and output), its recomputation, and in inference.
    case batchNormForward = "batch norm forward (+ReLU)"
    case batchNormBackward = "batch norm backward"
    case poolingUpsampling = "max pool, upsample"
    /// ReLU alone, sigmoid, 1x1x1 convolutions, the completeness head's global max.
    case otherLayers = "1x1x1 conv, sigmoid, global max, ReLU"
    /// The loss, training Dice counts, Adam, gradient scaling and the divergence check.
    case lossOptimizer = "loss, Adam"
    /// Host transfers, fills and device copies.
    case memory = "copies, fills, transfers"
    /// The segmentation walk's patch extraction and fragment bookkeeping.
    case segmentation = "segmentation bookkeeping"
}

/// Time per kind of kernel over the marked span of work, averaged over the spans collected.
public struct KernelProfile: Sendable {
    /// What the marks were (`BackendClock.source`).
    public var clock: String
    /// Spans collected (steps or forward passes).
    public var spans = 0
    /// Mean seconds per span inside calls of each kind.
    public var seconds: [KernelKind: Double] = [:]
    /// Calls of each kind per span.
    public var calls: [KernelKind: Int] = [:]
    /// Bytes per span of the activation tensors that calls of each kind read and write, each operand counted once
    /// (a tensor read and written, twice): the least a kernel can move, so bytes over seconds is the bandwidth a
    /// one-pass kernel would need. Counted for batch norm and pooling/upsampling, whose time is memory traffic.
    public var bytes: [KernelKind: Double] = [:]
    /// Calls of each 3x3x3 convolution shape and pass per span (what `ifcn bench --conv-sweep` times).
    public var convolutions: [ConvolutionCall: Int] = [:]
    /// Mean seconds per span from the first mark to the last.
    public var total = 0.0

    /// Time in no call: on a GPU the device idled between kernels (launch overhead, host work); on the CPU the
    /// network's own host code between kernels.
    public var between: Double { total - seconds.values.reduce(0, +) }

    /// The profile as a table: kind, calls, milliseconds per span and share of the total.
    public func table(title: String) -> String {
        var lines = ["\(title): mean of \(spans), \(clock)",
                     "  " + "kind".padding(toLength: 40, withPad: " ", startingAt: 0) + "calls      ms   share    GB/s"]
        func row(_ label: String, _ n: String, _ s: Double, bytes: Double = 0) {
            let rate = bytes > 0 && s > 0 ? String(format: " %7.1f", bytes / s / 1e9) : ""
            lines.append("  " + label.padding(toLength: 40, withPad: " ", startingAt: 0) + n.leftPadded(5)
                         + String(format: " %8.2f %6.1f%%", s * 1e3, total > 0 ? 100 * s / total : 0) + rate)
        }
        for k in KernelKind.allCases where (calls[k] ?? 0) > 0 {
            row(k.rawValue, "\(calls[k]!)", seconds[k] ?? 0, bytes: bytes[k] ?? 0)
        }
        row("between calls", "", between)
        row("total", "", total)
        return lines.joined(separator: "\n")
    }

    /// JSON-ready: seconds, calls and bytes per kind, the time between calls and the total, per span.
    public var json: [String: Any] {
        ["clock": clock, "spans": spans, "total_seconds": total, "between_calls_seconds": between,
         "seconds": Dictionary(uniqueKeysWithValues: seconds.map { ($0.key.rawValue, $0.value) }),
         "calls": Dictionary(uniqueKeysWithValues: calls.map { ($0.key.rawValue, $0.value) }),
         "bytes": Dictionary(uniqueKeysWithValues: bytes.map { ($0.key.rawValue, $0.value) }),
         "convolutions": Dictionary(uniqueKeysWithValues: convolutions.map { ($0.key.description, $0.value) })]
    }
}

private extension String {
    func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}

/// A backend that runs every call on `inner` and marks its start and end on `inner`'s clock, so that the
/// time of a span of work (a training step, a forward pass) splits by kind of kernel. Marks cost a few
/// microseconds per call and never synchronise; `collect` does, once per span.
public final class ProfilingBackend: ComputeBackend {
    public let inner: any ComputeBackend
    /// Off: calls go straight through, unmarked (timings without the marks' cost).
    public var enabled = true
    private let clock: any BackendClock
    private var marks = 0
    private var kinds: [KernelKind] = []
    private var spanBytes: [KernelKind: Double] = [:]
    private var spanConvolutions: [ConvolutionCall: Int] = [:]
    private var accumulated: KernelProfile

    init(_ inner: any ComputeBackend) {
        self.inner = inner
        clock = inner.makeClock()
        accumulated = KernelProfile(clock: clock.source)
    }

    public var name: String { inner.name }
    public var threads: Int { inner.threads }
    public func makeClock() -> any BackendClock { inner.makeClock() }

    /// Ends the current span: waits for the backend, adds the span's times to the profile and starts a new one.
    public func collect() {
        inner.synchronize()
        defer { spanConvolutions.removeAll(keepingCapacity: true); spanBytes.removeAll(keepingCapacity: true) }
        guard marks >= 2 else { marks = 0; kinds.removeAll(keepingCapacity: true); return }
        let n = Double(accumulated.spans)
        func mean(_ old: Double, _ new: Double) -> Double { (old * n + new) / (n + 1) }
        var span: [KernelKind: Double] = [:], count: [KernelKind: Int] = [:]
        for (i, k) in kinds.enumerated() {
            span[k, default: 0] += clock.seconds(from: 2 * i, to: 2 * i + 1)
            count[k, default: 0] += 1
        }
        for k in Set(span.keys).union(accumulated.seconds.keys) {
            accumulated.seconds[k] = mean(accumulated.seconds[k] ?? 0, span[k] ?? 0)
        }
        accumulated.calls = count
        for k in Set(spanBytes.keys).union(accumulated.bytes.keys) {
            accumulated.bytes[k] = mean(accumulated.bytes[k] ?? 0, spanBytes[k] ?? 0)
        }
        accumulated.convolutions = spanConvolutions
        accumulated.total = mean(accumulated.total, clock.seconds(from: 0, to: marks - 1))
        accumulated.spans += 1
        marks = 0
        kinds.removeAll(keepingCapacity: true)
    }

    /// The profile of the spans collected so far; `reset` starts a new one.
    public func profile(reset: Bool = false) -> KernelProfile {
        let p = accumulated
        if reset { accumulated = KernelProfile(clock: clock.source) }
        return p
    }

    @inline(__always)
    private func timed<R>(_ kind: KernelKind, bytes tensors: [TensorRef] = [], _ body: () throws -> R) rethrows -> R {
        guard enabled else { return try body() }
        if !tensors.isEmpty {
            spanBytes[kind, default: 0] += Double(tensors.reduce(0) { $0 + $1.count * $1.buffer.format.bytes })
        }
        let start = marks  // taken before the call: a call inside `body` (withHostMemory's) gets its own pair
        marks += 2
        kinds.append(kind)
        clock.record(start)
        let r = try body()
        clock.record(start + 1)
        return r
    }

    /// Counts a convolution of the current span.
    @inline(__always)
    private func note(_ shape: ConvolutionShape, _ direction: ConvolutionDirection) {
        if enabled { spanConvolutions[ConvolutionCall(shape, direction), default: 0] += 1 }
    }

    // MARK: forwarded calls

    public func synchronize() { inner.synchronize() }
    public func allocate(_ count: Int) -> any DeviceBuffer { inner.allocate(count) }
    public func allocateActivations(_ count: Int) -> any DeviceBuffer { inner.allocateActivations(count) }
    public func upload(_ source: UnsafePointer<Float>, to destination: TensorRef) {
        timed(.memory) { inner.upload(source, to: destination) }
    }
    public var stagesUploads: Bool { inner.stagesUploads }
    /// A host copy, before the step's work: not marked.
    public func stageUpload(_ source: UnsafePointer<Float>, count: Int) -> StagedUpload? { inner.stageUpload(source, count: count) }
    public func upload(_ staged: StagedUpload, to destination: TensorRef) {
        timed(.memory) { inner.upload(staged, to: destination) }
    }
    /// Marked on the kernels' order of work, where an upload ahead takes no time (its copy runs beside them).
    public func uploadAhead(_ source: UnsafePointer<Float>, to destination: TensorRef) {
        timed(.memory) { inner.uploadAhead(source, to: destination) }
    }
    public func awaitUploads() { inner.awaitUploads() }
    public func download(_ source: TensorRef, to destination: UnsafeMutablePointer<Float>) {
        timed(.memory) { inner.download(source, to: destination) }
    }
    public func withHostMemory<R>(_ tensor: TensorRef, _ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        try timed(.memory) { try inner.withHostMemory(tensor, body) }
    }
    public func fill(_ tensor: TensorRef, value: Float) { timed(.memory) { inner.fill(tensor, value: value) } }
    public func copy(_ source: TensorRef, to destination: TensorRef) { timed(.memory) { inner.copy(source, to: destination) } }

    public func conv3Forward(input: TensorRef, inChannels: Int, extent: Extent3,
                             weight: TensorRef, bias: TensorRef?, output: TensorRef, outChannels: Int) {
        note(ConvolutionShape(inChannels: inChannels, outChannels: outChannels, extent: extent), .forward)
        timed(.convolutionForward) {
            inner.conv3Forward(input: input, inChannels: inChannels, extent: extent, weight: weight, bias: bias,
                               output: output, outChannels: outChannels)
        }
    }
    public func conv3InferenceForward(input: TensorRef, inChannels: Int, extent: Extent3,
                                      weight: TensorRef, bias: TensorRef?, output: TensorRef, outChannels: Int) {
        note(ConvolutionShape(inChannels: inChannels, outChannels: outChannels, extent: extent), .forward)
        timed(.convolutionForward) {
            inner.conv3InferenceForward(input: input, inChannels: inChannels, extent: extent, weight: weight, bias: bias,
                                        output: output, outChannels: outChannels)
        }
    }
    public func conv3BatchNormInferenceForward(input: TensorRef, inChannels: Int, extent: Extent3, weight: TensorRef,
                                               convOutput: TensorRef, outChannels: Int, norm: EvalBatchNorm, output: TensorRef) {
        note(ConvolutionShape(inChannels: inChannels, outChannels: outChannels, extent: extent), .forward)
        timed(.convolutionForward) {
            inner.conv3BatchNormInferenceForward(input: input, inChannels: inChannels, extent: extent, weight: weight,
                                                 convOutput: convOutput, outChannels: outChannels, norm: norm, output: output)
        }
    }
    public func conv3BackwardData(gradOutput: TensorRef, outChannels: Int, extent: Extent3,
                                  weight: TensorRef, gradInput: TensorRef, inChannels: Int, accumulate: Bool) {
        note(ConvolutionShape(inChannels: inChannels, outChannels: outChannels, extent: extent), .backwardData)
        timed(.convolutionBackwardData) {
            inner.conv3BackwardData(gradOutput: gradOutput, outChannels: outChannels, extent: extent, weight: weight,
                                    gradInput: gradInput, inChannels: inChannels, accumulate: accumulate)
        }
    }
    public func conv3BackwardWeight(input: TensorRef, inChannels: Int, extent: Extent3, gradOutput: TensorRef,
                                    outChannels: Int, gradWeight: TensorRef, gradBias: TensorRef?) {
        note(ConvolutionShape(inChannels: inChannels, outChannels: outChannels, extent: extent), .backwardFilter)
        timed(.convolutionBackwardFilter) {
            inner.conv3BackwardWeight(input: input, inChannels: inChannels, extent: extent, gradOutput: gradOutput,
                                      outChannels: outChannels, gradWeight: gradWeight, gradBias: gradBias)
        }
    }

    public func conv1Forward(input: TensorRef, inChannels: Int, voxels: Int,
                             weight: TensorRef, bias: TensorRef?, output: TensorRef, outChannels: Int) {
        timed(.otherLayers) {
            inner.conv1Forward(input: input, inChannels: inChannels, voxels: voxels, weight: weight, bias: bias,
                               output: output, outChannels: outChannels)
        }
    }
    public func conv1Backward(input: TensorRef, inChannels: Int, voxels: Int, weight: TensorRef,
                              gradOutput: TensorRef, outChannels: Int,
                              gradInput: TensorRef?, accumulate: Bool, gradWeight: TensorRef, gradBias: TensorRef?) {
        timed(.otherLayers) {
            inner.conv1Backward(input: input, inChannels: inChannels, voxels: voxels, weight: weight, gradOutput: gradOutput,
                                outChannels: outChannels, gradInput: gradInput, accumulate: accumulate,
                                gradWeight: gradWeight, gradBias: gradBias)
        }
    }

    public func batchNormTrainForward(input: TensorRef, output: TensorRef, channels: Int, voxels: Int,
                                      gamma: TensorRef, beta: TensorRef, runningMean: TensorRef, runningVar: TensorRef,
                                      saved: BatchNormSaved, momentum: Float, epsilon: Float, relu: Bool) {
        timed(.batchNormForward, bytes: [input, output]) {
            inner.batchNormTrainForward(input: input, output: output, channels: channels, voxels: voxels, gamma: gamma,
                                        beta: beta, runningMean: runningMean, runningVar: runningVar, saved: saved,
                                        momentum: momentum, epsilon: epsilon, relu: relu)
        }
    }
    public func batchNormRecompute(input: TensorRef, output: TensorRef, channels: Int, voxels: Int,
                                   saved: BatchNormSaved, relu: Bool) {
        timed(.batchNormForward, bytes: [input, output]) {
            inner.batchNormRecompute(input: input, output: output, channels: channels, voxels: voxels, saved: saved, relu: relu)
        }
    }
    public func batchNormEvalForward(input: TensorRef, output: TensorRef, channels: Int, voxels: Int,
                                     gamma: TensorRef, beta: TensorRef, runningMean: TensorRef, runningVar: TensorRef,
                                     epsilon: Float, relu: Bool) {
        timed(.batchNormForward, bytes: [input, output]) {
            inner.batchNormEvalForward(input: input, output: output, channels: channels, voxels: voxels, gamma: gamma,
                                       beta: beta, runningMean: runningMean, runningVar: runningVar, epsilon: epsilon, relu: relu)
        }
    }
    public func batchNormBackward(input: TensorRef, gradOutput: TensorRef, gradInput: TensorRef,
                                  channels: Int, voxels: Int, gamma: TensorRef, saved: BatchNormSaved,
                                  gradGamma: TensorRef, gradBeta: TensorRef, relu: Bool, accumulate: Bool) {
        timed(.batchNormBackward, bytes: [input, gradOutput, gradInput] + (accumulate ? [gradInput] : [])) {
            inner.batchNormBackward(input: input, gradOutput: gradOutput, gradInput: gradInput,
                                    channels: channels, voxels: voxels, gamma: gamma, saved: saved,
                                    gradGamma: gradGamma, gradBeta: gradBeta, relu: relu, accumulate: accumulate)
        }
    }

    public func reluForward(_ tensor: TensorRef) { timed(.otherLayers) { inner.reluForward(tensor) } }
    public func reluBackward(output: TensorRef, grad: TensorRef) { timed(.otherLayers) { inner.reluBackward(output: output, grad: grad) } }

    public func maxPool2Forward(input: TensorRef, output: TensorRef, channels: Int, extent: Extent3) {
        timed(.poolingUpsampling, bytes: [input, output]) {
            inner.maxPool2Forward(input: input, output: output, channels: channels, extent: extent)
        }
    }
    public func maxPool2Backward(input: TensorRef, output: TensorRef, gradOutput: TensorRef, gradInput: TensorRef,
                                 channels: Int, extent: Extent3, accumulate: Bool) {
        // The output is not read: the maximum's place is found again in the input.
        timed(.poolingUpsampling, bytes: [input, gradOutput, gradInput] + (accumulate ? [gradInput] : [])) {
            inner.maxPool2Backward(input: input, output: output, gradOutput: gradOutput, gradInput: gradInput,
                                   channels: channels, extent: extent, accumulate: accumulate)
        }
    }
    public func upsample2Forward(input: TensorRef, output: TensorRef, channels: Int, extent: Extent3) {
        timed(.poolingUpsampling, bytes: [input, output]) {
            inner.upsample2Forward(input: input, output: output, channels: channels, extent: extent)
        }
    }
    public func upsample2Backward(gradOutput: TensorRef, gradInput: TensorRef, channels: Int, extent: Extent3, accumulate: Bool) {
        timed(.poolingUpsampling, bytes: [gradOutput, gradInput] + (accumulate ? [gradInput] : [])) {
            inner.upsample2Backward(gradOutput: gradOutput, gradInput: gradInput, channels: channels, extent: extent,
                                    accumulate: accumulate)
        }
    }

    public func globalMaxForward(input: TensorRef, output: TensorRef, channels: Int, voxels: Int) {
        timed(.otherLayers) { inner.globalMaxForward(input: input, output: output, channels: channels, voxels: voxels) }
    }
    public func globalMaxBackward(input: TensorRef, output: TensorRef, gradOutput: TensorRef, gradInput: TensorRef,
                                  channels: Int, voxels: Int, accumulate: Bool) {
        timed(.otherLayers) {
            inner.globalMaxBackward(input: input, output: output, gradOutput: gradOutput, gradInput: gradInput,
                                    channels: channels, voxels: voxels, accumulate: accumulate)
        }
    }
    public func sigmoidForward(input: TensorRef, output: TensorRef) {
        timed(.otherLayers) { inner.sigmoidForward(input: input, output: output) }
    }

    public func trainingLoss(prob: TensorRef, target: TensorRef, weight: TensorRef, lambda: Float, gradLogit: TensorRef,
                             clsLogit: TensorRef, completenessLabel: Float, clsGradLogit: TensorRef) {
        timed(.lossOptimizer) {
            inner.trainingLoss(prob: prob, target: target, weight: weight, lambda: lambda, gradLogit: gradLogit,
                               clsLogit: clsLogit, completenessLabel: completenessLabel, clsGradLogit: clsGradLogit)
        }
    }
    public func readTrainingScalars() -> TrainingScalars { inner.readTrainingScalars() }
    public func adamStep(parameters: TensorRef, gradients: TensorRef, firstMoment: TensorRef, secondMoment: TensorRef,
                         learningRate: Float, beta1: Float, beta2: Float, epsilon: Float, step: Int) {
        timed(.lossOptimizer) {
            inner.adamStep(parameters: parameters, gradients: gradients, firstMoment: firstMoment, secondMoment: secondMoment,
                           learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon, step: step)
        }
    }
    public func scale(_ tensor: TensorRef, by factor: Float) { timed(.lossOptimizer) { inner.scale(tensor, by: factor) } }
    public func sumOfSquares(_ tensor: TensorRef) -> Double { timed(.lossOptimizer) { inner.sumOfSquares(tensor) } }

    public func extractPatch(_ volume: TensorRef, box: PatchBox, fill: Float, into patch: TensorRef) {
        timed(.segmentation) { inner.extractPatch(volume, box: box, fill: fill, into: patch) }
    }
    public func extractMaskPatch(_ mask: TensorRef, box: PatchBox, into patch: TensorRef) {
        timed(.segmentation) { inner.extractMaskPatch(mask, box: box, into: patch) }
    }
    public func maskHash(_ mask: TensorRef, box: PatchBox) -> UInt64 { timed(.segmentation) { inner.maskHash(mask, box: box) } }
    public func fragmentSums(_ probabilities: TensorRef, box: PatchBox, unlabelledIn labels: TensorRef?) -> VoxelSums {
        timed(.segmentation) { inner.fragmentSums(probabilities, box: box, unlabelledIn: labels) }
    }
    public func acceptFragment(_ probabilities: TensorRef, box: PatchBox, mask: TensorRef, labels: TensorRef, label: Int32) {
        timed(.segmentation) { inner.acceptFragment(probabilities, box: box, mask: mask, labels: labels, label: label) }
    }
}
