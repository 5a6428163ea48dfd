import Foundation

/// The kernels the network needs, on tensors that may live on a device.
///
/// Every volume tensor is one sample, channel-first: [C, D, H, W], W fastest.
/// Kernels that produce a gradient take `accumulate`: false overwrites the
/// destination, true adds to it (several consumers of one activation).
/// Parameter gradients always accumulate (shared blocks sum over their uses).
public protocol ComputeBackend: AnyObject {
    var name: String { get }
    /// Compute threads used by the kernels.
    var threads: Int { get }

    /// Waits until all queued work is done (a no-op on the CPU, which works synchronously).
    func synchronize()
    /// A clock that marks points in this backend's order of work (profiles).
    func makeClock() -> any BackendClock

    func allocate(_ count: Int) -> any DeviceBuffer
    /// Memory for a training network's activations and their gradients: `allocate`'s float32 unless the backend
    /// stores them narrower (the CUDA backend with `--gpu-activations bf16`: bfloat16).
    func allocateActivations(_ count: Int) -> any DeviceBuffer
    func upload(_ source: UnsafePointer<Float>, to destination: TensorRef)
    /// Whether `stageUpload` can take uploads ahead (a GPU's pinned slots); false on the CPU, whose upload is a copy.
    var stagesUploads: Bool { get }
    /// Copies `count` values now into memory of the backend's own, from which `upload(_:to:)` later only queues
    /// the transfer: a training step stages the next sample there while the device runs its backward pass. nil
    /// where staging brings nothing or no slot can hold the values; the caller then uploads from its own memory.
    func stageUpload(_ source: UnsafePointer<Float>, count: Int) -> StagedUpload?
    /// Queues the transfer of a staged upload to `destination` (of the staged count); its memory is free again
    /// once the device has read it.
    func upload(_ staged: StagedUpload, to destination: TensorRef)
    /// Queues an upload that may run alongside the work queued after it (a GPU's copy engine, while the kernels
    /// run): the values are in `destination` for the work queued after the next `awaitUploads()`, and the work
    /// queued in between must not touch `destination` (the work queued before may: the upload waits for it).
    /// `source` may be reused on return. A backend without a copy engine uploads in order (the default).
    func uploadAhead(_ source: UnsafePointer<Float>, to destination: TensorRef)
    /// Makes the work queued from now on wait for every `uploadAhead` so far.
    func awaitUploads()
    func download(_ source: TensorRef, to destination: UnsafeMutablePointer<Float>)
    /// Lends host memory holding the tensor (the tensor itself on the CPU; a device backend
    /// would stage through host memory and copy changes back). Used for MPI allreduce.
    func withHostMemory<R>(_ tensor: TensorRef, _ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R
    func fill(_ tensor: TensorRef, value: Float)
    func copy(_ source: TensorRef, to destination: TensorRef)

    // 3x3x3 convolution, padding 1, stride 1. weight [cout, cin, 3, 3, 3], bias [cout].
    func conv3Forward(input: TensorRef, inChannels: Int, extent: Extent3,
                      weight: TensorRef, bias: TensorRef?, output: TensorRef, outChannels: Int)
    /// The same in an inference (eval-mode) pass, where no gradient flows back through it: a backend
    /// may use a faster algorithm with slightly different rounding (the CPU: Winograd at C >= 32).
    func conv3InferenceForward(input: TensorRef, inChannels: Int, extent: Extent3,
                               weight: TensorRef, bias: TensorRef?, output: TensorRef, outChannels: Int)
    /// conv3InferenceForward into `convOutput`, then batchNormEvalForward of it into `output`, as an inference
    /// network's paper blocks run. A backend may fuse the two (the CPU's Winograd kernels apply the batch norm as
    /// they write each output), with the same rounding, and leave `convOutput` unwritten.
    func conv3BatchNormInferenceForward(input: TensorRef, inChannels: Int, extent: Extent3, weight: TensorRef,
                                        convOutput: TensorRef, outChannels: Int, norm: EvalBatchNorm, output: TensorRef)
    func conv3BackwardData(gradOutput: TensorRef, outChannels: Int, extent: Extent3,
                           weight: TensorRef, gradInput: TensorRef, inChannels: Int, accumulate: Bool)
    func conv3BackwardWeight(input: TensorRef, inChannels: Int, extent: Extent3, gradOutput: TensorRef,
                             outChannels: Int, gradWeight: TensorRef, gradBias: TensorRef?)

    // 1x1x1 convolution. weight [cout, cin], bias [cout].
    func conv1Forward(input: TensorRef, inChannels: Int, voxels: Int,
                      weight: TensorRef, bias: TensorRef?, output: TensorRef, outChannels: Int)
    func conv1Backward(input: TensorRef, inChannels: Int, voxels: Int, weight: TensorRef,
                       gradOutput: TensorRef, outChannels: Int,
                       gradInput: TensorRef?, accumulate: Bool, gradWeight: TensorRef, gradBias: TensorRef?)

    /// Batch norm over the voxels of each channel, optionally followed by ReLU.
    /// Train: batch statistics, what the backward pass needs into `saved`, running statistics updated
    /// (PyTorch semantics: biased variance to normalise, unbiased one for running_var).
    func batchNormTrainForward(input: TensorRef, output: TensorRef, channels: Int, voxels: Int,
                               gamma: TensorRef, beta: TensorRef, runningMean: TensorRef, runningVar: TensorRef,
                               saved: BatchNormSaved, momentum: Float, epsilon: Float, relu: Bool)
    /// Writes into `output` exactly what the `batchNormTrainForward` that filled `saved` wrote from the same
    /// `input`, bit for bit, with no reduction: a training step recomputes an output in its backward pass instead
    /// of keeping it (`TrainingArena`). Elementwise; input and output may be the same tensor.
    func batchNormRecompute(input: TensorRef, output: TensorRef, channels: Int, voxels: Int,
                            saved: BatchNormSaved, relu: Bool)
    /// Elementwise: input and output may be the same tensor (an inference network runs it in place).
    func batchNormEvalForward(input: TensorRef, output: TensorRef, channels: Int, voxels: Int,
                              gamma: TensorRef, beta: TensorRef, runningMean: TensorRef, runningVar: TensorRef,
                              epsilon: Float, relu: Bool)
    /// From the forward pass's input and `saved`: with `relu`, the gradient passes where the output before the ReLU
    /// was positive, recomputed from the input and `saved` with the forward pass's own arithmetic, so the backward
    /// pass never reads the output.
    func batchNormBackward(input: TensorRef, gradOutput: TensorRef, gradInput: TensorRef,
                           channels: Int, voxels: Int, gamma: TensorRef, saved: BatchNormSaved,
                           gradGamma: TensorRef, gradBeta: TensorRef, relu: Bool, accumulate: Bool)

    /// In-place ReLU and its backward (mask by the forward output).
    func reluForward(_ tensor: TensorRef)
    func reluBackward(output: TensorRef, grad: TensorRef)

    /// 2x2x2 max pooling; `extent` is the input's. Backward routes to the first maximum.
    func maxPool2Forward(input: TensorRef, output: TensorRef, channels: Int, extent: Extent3)
    func maxPool2Backward(input: TensorRef, output: TensorRef, gradOutput: TensorRef, gradInput: TensorRef,
                          channels: Int, extent: Extent3, accumulate: Bool)

    /// Nearest x2 upsampling; `extent` is the input's (low resolution).
    func upsample2Forward(input: TensorRef, output: TensorRef, channels: Int, extent: Extent3)
    func upsample2Backward(gradOutput: TensorRef, gradInput: TensorRef, channels: Int, extent: Extent3, accumulate: Bool)

    /// Per-channel maximum over all voxels; backward splits the gradient evenly among ties.
    func globalMaxForward(input: TensorRef, output: TensorRef, channels: Int, voxels: Int)
    func globalMaxBackward(input: TensorRef, output: TensorRef, gradOutput: TensorRef, gradInput: TensorRef,
                           channels: Int, voxels: Int, accumulate: Bool)

    /// Elementwise: input and output may be the same tensor (an inference network runs it in place).
    func sigmoidForward(input: TensorRef, output: TensorRef)

    /// Queues a training step's loss (METHOD.md) and its gradients at the two logits: the weighted segmentation
    /// loss seg = lambda * sum(w (1-t) s) + sum(w t (1-s)) with s = prob, whose gradient through the sigmoid goes to
    /// `gradLogit`; the completeness head's binary cross-entropy against `completenessLabel` (logs clamped at -100,
    /// as PyTorch's BCELoss), whose gradient sigmoid(logit) - label goes to `clsGradLogit[0]`; and the overlap of
    /// prob > 0.5 with target > 0.5 (the training Dice without copying volumes to the host). Nothing is read back
    /// here: `readTrainingScalars` does, once, after the step has queued its backward pass.
    func trainingLoss(prob: TensorRef, target: TensorRef, weight: TensorRef, lambda: Float, gradLogit: TensorRef,
                      clsLogit: TensorRef, completenessLabel: Float, clsGradLogit: TensorRef)

    /// The scalars of the last `trainingLoss`, copied to the host in one read that waits for that loss (not for
    /// the work queued after it).
    func readTrainingScalars() -> TrainingScalars

    /// Adam (PyTorch semantics, no weight decay) over a flat parameter buffer; `step` counts from 1.
    func adamStep(parameters: TensorRef, gradients: TensorRef, firstMoment: TensorRef, secondMoment: TensorRef,
                  learningRate: Float, beta1: Float, beta2: Float, epsilon: Float, step: Int)

    /// Scale in place (gradient averaging after an allreduce).
    func scale(_ tensor: TensorRef, by factor: Float)

    // Whole-scan volumes for segmentation: the scan, the instance memory and the labels stay on the backend, so
    // an evaluation of the walk moves a few scalars, not volumes. A byte mask of n voxels is a tensor of
    // (n + 3) / 4 elements holding n bytes (0 or 1); a label volume holds one Int32 per element.

    /// Copies the box of side `box.side` at `box.origin` out of `volume` (a scan of `box.scan` voxels, x fastest)
    /// into `patch` (side^3, x fastest), with `fill` outside the scan.
    func extractPatch(_ volume: TensorRef, box: PatchBox, fill: Float, into patch: TensorRef)
    /// The same from a byte mask: 1 where the byte is set, else 0 (also outside the scan).
    func extractMaskPatch(_ mask: TensorRef, box: PatchBox, into patch: TensorRef)
    /// A hash of which voxels of the box are set in `mask` (a wrapping sum of mix64 of their patch positions).
    func maskHash(_ mask: TensorRef, box: PatchBox) -> UInt64
    /// The voxels of the box inside the scan where `probabilities` (side^3) exceed 0.5 and, when `labels` is given,
    /// whose label is 0: their number and the sums of their scan coordinates.
    func fragmentSums(_ probabilities: TensorRef, box: PatchBox, unlabelledIn labels: TensorRef?) -> VoxelSums
    /// Accepts the fragment of `probabilities` (as `fragmentSums` counts it): its voxels are set in `mask`, and
    /// those whose label is 0 get `label`.
    func acceptFragment(_ probabilities: TensorRef, box: PatchBox, mask: TensorRef, labels: TensorRef, label: Int32)

    /// Sum of the squared elements in float64 over fixed blocks in a fixed order (the same bits on every
    /// run); not finite exactly when an element is not (the averaged gradient's divergence check).
    func sumOfSquares(_ tensor: TensorRef) -> Double
}

extension ComputeBackend {
    public func uploadAhead(_ source: UnsafePointer<Float>, to destination: TensorRef) { upload(source, to: destination) }
    public func awaitUploads() {}
}

extension ComputeBackend {
    public func allocateActivations(_ count: Int) -> any DeviceBuffer { allocate(count) }
}

/// Values a backend holds ready for an upload (`ComputeBackend.stageUpload`): which of its slots, and how many.
public struct StagedUpload: Equatable, Sendable {
    public let slot: Int
    public let count: Int
    public init(slot: Int, count: Int) { self.slot = slot; self.count = count }
}

/// What a training step reads back from the backend: the loss terms and the overlap counts of `trainingLoss`.
public struct TrainingScalars: Equatable, Sendable {
    /// lambda * sum(w (1-t) s) and sum(w t (1-s)) over the patch, summed in float64.
    public var falsePositive: Double
    public var falseNegative: Double
    /// sigmoid of the completeness logit, and its binary cross-entropy against the label.
    public var completeness: Double
    public var classification: Double
    /// Voxels with prob > 0.5, with target > 0.5, and with both.
    public var predicted: Int
    public var reference: Int
    public var intersection: Int

    public init(falsePositive: Double, falseNegative: Double, completeness: Double, classification: Double,
                predicted: Int, reference: Int, intersection: Int) {
        self.falsePositive = falsePositive; self.falseNegative = falseNegative
        self.completeness = completeness; self.classification = classification
        self.predicted = predicted; self.reference = reference; self.intersection = intersection
    }

    /// The completeness head's terms for `logit` and `label`, in float64 as every backend computes them: the
    /// probability, its cross-entropy (each log clamped at -100; a NaN logit stays NaN, so a diverged step shows),
    /// and the gradient at the logit.
    public static func completenessTerms(logit: Float, label: Float) -> (probability: Double, crossEntropy: Double, gradient: Float) {
        let c = 1 / (1 + exp(-Double(logit)))
        let y = Double(label)
        let crossEntropy = -(y * max(log(c), -100) + (1 - y) * max(log(1 - c), -100))
        return (c, crossEntropy, Float(c - y))
    }
}

/// A cube of `side` voxels at `origin` (its first voxel; it may lie partly outside) of a scan of `scan` voxels.
public struct PatchBox: Equatable, Sendable {
    public var scan: SIMD3<Int>
    public var origin: SIMD3<Int>
    public var side: Int
    public init(scan: SIMD3<Int>, origin: SIMD3<Int>, side: Int) { self.scan = scan; self.origin = origin; self.side = side }

    /// Elements of a byte-mask tensor for a scan of `voxels` voxels.
    public static func maskElements(voxels: Int) -> Int { (voxels + 3) / 4 }

    /// Visits each row of the box: `row(patchOffset, scanIndex, count)` for the run inside the scan (count > 0),
    /// and `outside(patchOffset, count)` for the parts outside it. The host loop behind the CPU backend.
    @inline(__always)
    public func forEachRow(inside row: (Int, Int, Int) -> Void, outside: (Int, Int) -> Void) {
        let p = side, nx = scan.x, ny = scan.y, nz = scan.z, o = origin
        let x0 = max(0, -o.x), x1 = min(p, nx - o.x)
        for pz in 0..<p {
            let z = o.z + pz
            for py in 0..<p {
                let y = o.y + py
                let start = p * (py + p * pz)
                guard z >= 0, z < nz, y >= 0, y < ny, x1 > x0 else {
                    outside(start, p)
                    continue
                }
                if x0 > 0 { outside(start, x0) }
                row(start + x0, o.x + x0 + nx * (y + ny * z), x1 - x0)
                if x1 < p { outside(start + x1, p - x1) }
            }
        }
    }
}

/// Some voxels of a scan: how many, and the sums of their x, y and z indices (exact below 2^53).
public struct VoxelSums: Equatable, Sendable {
    public var count: Int
    public var sum: SIMD3<Double>
    public init(count: Int, sum: SIMD3<Double>) { self.count = count; self.sum = sum }
    /// Their mean position (zero for none).
    public var centroid: SIMD3<Double> { count > 0 ? sum / Double(count) : SIMD3() }
}

/// What a training-mode batch norm keeps for its backward pass, per channel: the batch mean and inverse standard
/// deviation (float, as PyTorch saves them), and the affine map its output was computed with, `scale` and `shift` in
/// the backend's own form (the CPU applies x * scale + shift, the GPU (x - mean) * scale + shift). With them the
/// backward pass tells the fused ReLU's mask from the input, and `batchNormRecompute` rewrites the output bit for bit.
public struct BatchNormSaved {
    public let mean: TensorRef, invStd: TensorRef, scale: TensorRef, shift: TensorRef

    /// Floats one module's saved values take.
    public static func count(channels: Int) -> Int { 4 * channels }

    /// The four vectors in `storage` (`count(channels:)` floats), in this order.
    public init(_ storage: TensorRef, channels c: Int) {
        precondition(storage.count == BatchNormSaved.count(channels: c), "saved batch-norm values of \(c) channels")
        mean = storage.slice(0, c); invStd = storage.slice(c, c)
        scale = storage.slice(2 * c, c); shift = storage.slice(3 * c, c)
    }
}

/// An eval-mode batch norm (running statistics) and optional ReLU, as applied to a convolution's output.
public struct EvalBatchNorm {
    public var gamma: TensorRef, beta: TensorRef, runningMean: TensorRef, runningVar: TensorRef
    public var epsilon: Float
    public var relu: Bool

    public init(gamma: TensorRef, beta: TensorRef, runningMean: TensorRef, runningVar: TensorRef, epsilon: Float, relu: Bool) {
        self.gamma = gamma; self.beta = beta; self.runningMean = runningMean; self.runningVar = runningVar
        self.epsilon = epsilon; self.relu = relu
    }
}

extension ComputeBackend {
    public func conv3BatchNormInferenceForward(input: TensorRef, inChannels: Int, extent: Extent3, weight: TensorRef,
                                               convOutput: TensorRef, outChannels: Int, norm: EvalBatchNorm, output: TensorRef) {
        conv3InferenceForward(input: input, inChannels: inChannels, extent: extent, weight: weight, bias: nil,
                              output: convOutput, outChannels: outChannels)
        batchNormEvalForward(input: convOutput, output: output, channels: outChannels, voxels: extent.voxels,
                             gamma: norm.gamma, beta: norm.beta, runningMean: norm.runningMean, runningVar: norm.runningVar,
                             epsilon: norm.epsilon, relu: norm.relu)
    }

    public func conv3InferenceForward(input: TensorRef, inChannels: Int, extent: Extent3,
                                      weight: TensorRef, bias: TensorRef?, output: TensorRef, outChannels: Int) {
        conv3Forward(input: input, inChannels: inChannels, extent: extent, weight: weight, bias: bias,
                     output: output, outChannels: outChannels)
    }
}
