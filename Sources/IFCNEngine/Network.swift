import Foundation
import IFCNCompute

/// Losses of one training step (sums over voxels, like the reference).
public struct Loss: Sendable {
    public var total: Double
    public var segmentation: Double
    public var classification: Double
    /// Completeness probability the network predicted.
    public var completeness: Double
}

/// What a network is built for: training keeps every activation for the backward pass; inference runs
/// eval-mode forward passes only, with activation memory shared by liveness (Graph.packedForInference).
public enum NetworkUse: Sendable {
    case training, inference
}

/// The iterative FCN on a compute backend: all parameters in one flat buffer, all their
/// gradients in another, batch-norm running statistics in a third, and every activation (and, for
/// training, every activation gradient: `TrainingArena`) in one arena allocated once for the configuration.
public final class Network {
    public let config: NetworkConfig
    public let use: NetworkUse
    public let backend: any ComputeBackend
    let graph: Graph

    /// Parameter names/shapes/offsets (PyTorch state_dict names).
    public var parameterTable: TensorTable { graph.parameters }
    /// Running statistics names/shapes/offsets.
    public var bufferTable: TensorTable { graph.buffers }

    public let parameters: TensorRef
    public let gradients: TensorRef
    public let buffers: TensorRef
    let arena: TensorRef
    let savedStats: TensorRef
    let targetTensor: TensorRef
    let weightTensor: TensorRef
    /// `setTargets` has sent the maps of the coming backward pass.
    private var targetsSet = false
    /// What the last `backward` read back: its loss terms and overlap counts.
    private var lastTrainingScalars: TrainingScalars?
    private let backwardPlan: [(op: Int, mode: GradientMode)]
    /// Where a training network's activations and their gradients live in the arena (nil for inference, whose
    /// graph holds the arena offsets itself).
    let trainingArena: TrainingArena?

    /// Forward uses of each batch-norm module in training mode (PyTorch's num_batches_tracked).
    public internal(set) var batchesTracked: [String: Int]

    /// How often each batch-norm module runs in one forward pass (more than once where blocks share weights).
    private let batchNormUses: [Int]

    public static let batchNormMomentum: Float = 0.1
    public static let batchNormEpsilon: Float = 1e-5
    public static let falsePositiveWeight: Float = 0.1

    public convenience init(config: NetworkConfig, backend: any ComputeBackend, seed: UInt64 = 0, use: NetworkUse = .training) {
        self.init(config: config, backend: backend, seed: seed, use: use, sharedArena: true)
    }

    /// `sharedArena` false keeps a training network's activations and gradients apart (`TrainingArena`'s
    /// reference layout, for tests).
    init(config: NetworkConfig, backend: any ComputeBackend, seed: UInt64 = 0, use: NetworkUse, sharedArena: Bool) {
        self.config = config
        self.backend = backend
        self.use = use
        let built = Graph.build(config)
        graph = use == .training ? built : built.packedForInference()
        backwardPlan = use == .training ? Network.planBackward(built) : []
        trainingArena = use == .training ? TrainingArena(graph: built, plan: backwardPlan, sharing: sharedArena) : nil
        parameters = TensorRef(buffer: backend.allocate(graph.parameters.total))
        gradients = TensorRef(buffer: backend.allocate(graph.parameters.total))
        buffers = TensorRef(buffer: backend.allocate(graph.buffers.total))
        arena = TensorRef(buffer: trainingArena.map { backend.allocateActivations($0.size) } ?? backend.allocate(graph.arenaSize))
        savedStats = TensorRef(buffer: backend.allocate(max(graph.savedStatsSize, 1)))
        targetTensor = TensorRef(buffer: backend.allocate(config.voxels))
        weightTensor = TensorRef(buffer: backend.allocate(config.voxels))
        batchesTracked = Dictionary(uniqueKeysWithValues: graph.batchNorms.map { ($0.prefix, 0) })
        batchNormUses = graph.ops.reduce(into: [Int](repeating: 0, count: graph.batchNorms.count)) { uses, op in
            if case let .batchNorm(_, _, m, _, _) = op { uses[m] += 1 }
        }
        initialise(seed: seed)
    }

    /// PyTorch's default initialisation, drawn from a seeded stream in registration order.
    public func initialise(seed: UInt64) {
        var rng = SeededGenerator(seed: seed, stream: 0x1F_C0DE)
        var host = [Float](repeating: 0, count: graph.parameters.total)
        for t in graph.parameters.entries {
            switch graph.initialisation[t.name] ?? .constant(0) {
            case .constant(let v):
                for i in 0..<t.count { host[t.offset + i] = v }
            case .uniformFanIn(let fanIn):
                let bound = 1 / Double(fanIn).squareRoot()
                for i in 0..<t.count { host[t.offset + i] = Float(rng.uniform(-bound, bound)) }
            }
        }
        var stats = [Float](repeating: 0, count: graph.buffers.total)
        for t in graph.buffers.entries where t.name.hasSuffix("running_var") {
            for i in 0..<t.count { stats[t.offset + i] = 1 }
        }
        loadParameters(host)
        loadBuffers(stats)
        for k in batchesTracked.keys { batchesTracked[k] = 0 }
    }

    /// Sets every batch-norm layer's count of training batches (PyTorch's num_batches_tracked): a resumed
    /// run continues the count of the run it resumes, one batch per iteration.
    public func setBatchesTracked(_ count: Int) {
        for k in batchesTracked.keys { batchesTracked[k] = count }
    }

    // MARK: host access

    public func readParameters() -> [Float] { read(parameters) }
    public func readGradients() -> [Float] { read(gradients) }
    public func readBuffers() -> [Float] { read(buffers) }
    public func loadParameters(_ values: [Float]) { write(values, to: parameters) }
    public func loadGradients(_ values: [Float]) { write(values, to: gradients) }
    public func loadBuffers(_ values: [Float]) { write(values, to: buffers) }

    func read(_ t: TensorRef) -> [Float] {
        [Float](unsafeUninitializedCapacity: t.count) { b, n in
            backend.download(t, to: b.baseAddress!)
            n = t.count
        }
    }

    func write(_ values: [Float], to t: TensorRef) {
        precondition(values.count == t.count, "expected \(t.count) values, got \(values.count)")
        values.withUnsafeBufferPointer { backend.upload($0.baseAddress!, to: t) }
    }

    // MARK: forward

    func tensor(_ a: Activation) -> TensorRef { arena.slice(trainingArena?.activation(at: a.offset) ?? a.offset, a.count) }
    func grad(_ a: Activation) -> TensorRef {
        guard let trainingArena else { preconditionFailure("a network built for inference has no gradients") }
        return arena.slice(trainingArena.gradient(at: a.offset), a.count)
    }
    /// What batch norm `saved` (the offset in its op) kept of its last training-mode pass.
    func savedNorm(_ saved: Int, channels: Int) -> BatchNormSaved {
        BatchNormSaved(savedStats.slice(saved, BatchNormSaved.count(channels: channels)), channels: channels)
    }
    func param(_ offset: Int, _ count: Int) -> TensorRef { parameters.slice(offset, count) }
    func paramGrad(_ offset: Int, _ count: Int) -> TensorRef { gradients.slice(offset, count) }

    /// Sets the input patch: channel 0 the normalised image, channel 1 the instance memory (0/1).
    public func setInput(image: UnsafePointer<Float>, memory: UnsafePointer<Float>) {
        setInput(image: image, memory: memory, staged: StagedInput())
    }

    /// The input channels of a coming step, copied by the backend ahead of time (`ComputeBackend.stageUpload`):
    /// a training step stages the next sample while the device runs its backward pass.
    public struct StagedInput {
        var image: StagedUpload?
        var memory: StagedUpload?
        public init() {}
    }

    /// Stages the two input channels [P, P, P] of a coming step; `setInput(image:memory:staged:)` then sends them.
    public func stageInput(image: UnsafePointer<Float>, memory: UnsafePointer<Float>) -> StagedInput {
        var staged = StagedInput()
        staged.image = backend.stageUpload(image, count: config.voxels)
        staged.memory = backend.stageUpload(memory, count: config.voxels)
        return staged
    }

    /// Sets the input: each channel from what `staged` holds of it, else from `image` / `memory` (the same values).
    public func setInput(image: UnsafePointer<Float>, memory: UnsafePointer<Float>, staged: StagedInput) {
        let channels = inputChannels
        if let s = staged.image { backend.upload(s, to: channels.image) } else { backend.upload(image, to: channels.image) }
        if let s = staged.memory { backend.upload(s, to: channels.memory) } else { backend.upload(memory, to: channels.memory) }
    }

    /// The input channels on the backend (0: the normalised image, 1: the instance memory), for callers that
    /// fill them there (whole-scan segmentation copies patches on the device).
    public var inputChannels: (image: TensorRef, memory: TensorRef) {
        let input = tensor(graph.input), v = config.voxels
        return (input.slice(0, v), input.slice(v, v))
    }

    /// The segmentation probabilities [P, P, P] of the last forward pass, on the backend.
    public var segmentationProbabilities: TensorRef { tensor(graph.segProb) }

    /// Sets the input from one [2, P, P, P] array.
    public func setInput(_ input: UnsafePointer<Float>) {
        setInput(image: input, memory: input + config.voxels)
    }

    /// Runs the network. Training mode normalises with batch statistics and updates the
    /// running statistics; eval mode uses the running statistics.
    public func forward(training: Bool) {
        precondition(!training || use == .training, "a network built for inference runs eval-mode forward passes only")
        run(training ? .training : .running)
    }

    /// A forward pass that measures batch-norm statistics (`segment --scan-statistics`): it normalises with the
    /// patch's own statistics, as training does, and makes the running statistics the equal-weight mean of this
    /// patch's and the `index` patches measured before it (`index` 0 replaces them; a module used several times in
    /// one pass, as the seed variant's shared blocks are, averages over every use). The weights do not change;
    /// an inference network may run it (its batch norms run in place, which both backends' kernels allow), and the
    /// convolutions are the inference ones (no training scratch, the fast algorithms), writing only memory that an
    /// eval-mode pass writes too, so measuring adds nothing to the resident memory.
    public func measureBatchNormStatistics(index: Int) {
        precondition(index >= 0, "patch index \(index)")
        run(.measuring(index: index))
    }

    /// What batch norm does in a forward pass.
    private enum BatchStatistics: Equatable {
        /// Normalise with the running statistics (eval mode).
        case running
        /// Normalise with the patch's statistics and fold them into the running ones with PyTorch's momentum.
        case training
        /// Normalise with the patch's statistics; the running ones become the mean over patches 0...index.
        case measuring(index: Int)
    }

    /// The forward pass.
    private func run(_ statistics: BatchStatistics) {
        let training = statistics != .running
        // Uses of each batch-norm module in this pass so far, and in a whole pass (for measuring).
        var used = [Int](repeating: 0, count: graph.batchNorms.count)
        let b = backend
        // Batch norm with the patch's statistics, from `x` into `y` (which may be the same tensor).
        func normaliseWithPatchStatistics(_ x: TensorRef, _ y: TensorRef, module m: Int, saved: Int, relu: Bool) {
            let bn = graph.batchNorms[m], c = bn.channels
            let momentum: Float
            switch statistics {
            case .training: momentum = Network.batchNormMomentum; batchesTracked[bn.prefix, default: 0] += 1
            case let .measuring(k): momentum = 1 / Float(k * batchNormUses[m] + used[m] + 1)
            case .running: preconditionFailure()
            }
            used[m] += 1
            b.batchNormTrainForward(
                input: x, output: y, channels: c, voxels: x.count / c,
                gamma: param(bn.gamma, c), beta: param(bn.beta, c),
                runningMean: buffers.slice(bn.mean, c), runningVar: buffers.slice(bn.variance, c),
                saved: savedNorm(saved, channels: c), momentum: momentum, epsilon: Network.batchNormEpsilon, relu: relu)
        }
        var normDone = false
        for (index, op) in graph.ops.enumerated() {
            if normDone { normDone = false; continue }
            if statistics != .training, use == .inference, case let .conv3(x, y, w, nil) = op, index + 1 < graph.ops.count,
               case let .batchNorm(bx, by, m, saved, relu) = graph.ops[index + 1], bx.offset == y.offset, bx.count == y.count {
                // An inference network's paper block: the convolution writes straight into the norm's output, which the
                // packing keeps live from the convolution on, so the convolution's own output block (separate where the
                // norm writes into a skip connection's concatenation buffer: 512 MiB at C=64, P=128) is never touched.
                let c = y.channels
                if case .measuring = statistics {
                    b.conv3InferenceForward(input: tensor(x), inChannels: x.channels, extent: x.extent,
                                            weight: param(w, c * x.channels * 27), bias: nil, output: tensor(by), outChannels: c)
                    normaliseWithPatchStatistics(tensor(by), tensor(by), module: m, saved: saved, relu: relu)
                } else {
                    // Conv and batch norm in one pass where the backend fuses them.
                    let bn = graph.batchNorms[m]
                    let norm = EvalBatchNorm(gamma: param(bn.gamma, c), beta: param(bn.beta, c), runningMean: buffers.slice(bn.mean, c),
                                             runningVar: buffers.slice(bn.variance, c), epsilon: Network.batchNormEpsilon, relu: relu)
                    b.conv3BatchNormInferenceForward(input: tensor(x), inChannels: x.channels, extent: x.extent,
                                                     weight: param(w, c * x.channels * 27), convOutput: tensor(y), outChannels: c,
                                                     norm: norm, output: tensor(by))
                }
                normDone = true
                continue
            }
            switch op {
            case let .conv3(x, y, w, bias):
                let weight = param(w, y.channels * x.channels * 27), bias = bias.map { param($0, y.channels) }
                if statistics == .training {
                    b.conv3Forward(input: tensor(x), inChannels: x.channels, extent: x.extent, weight: weight,
                                   bias: bias, output: tensor(y), outChannels: y.channels)
                } else {
                    b.conv3InferenceForward(input: tensor(x), inChannels: x.channels, extent: x.extent, weight: weight,
                                            bias: bias, output: tensor(y), outChannels: y.channels)
                }
            case let .batchNorm(x, y, m, saved, relu):
                let bn = graph.batchNorms[m], c = x.channels
                if training {
                    normaliseWithPatchStatistics(tensor(x), tensor(y), module: m, saved: saved, relu: relu)
                } else {
                    b.batchNormEvalForward(
                        input: tensor(x), output: tensor(y), channels: c, voxels: x.extent.voxels,
                        gamma: param(bn.gamma, c), beta: param(bn.beta, c),
                        runningMean: buffers.slice(bn.mean, c), runningVar: buffers.slice(bn.variance, c),
                        epsilon: Network.batchNormEpsilon, relu: relu)
                }
            case let .relu(x):
                b.reluForward(tensor(x))
            case let .maxPool(x, y):
                b.maxPool2Forward(input: tensor(x), output: tensor(y), channels: x.channels, extent: x.extent)
            case let .upsample(x, y):
                b.upsample2Forward(input: tensor(x), output: tensor(y), channels: x.channels, extent: x.extent)
            case let .conv1(x, y, w, bias):
                b.conv1Forward(input: tensor(x), inChannels: x.channels, voxels: x.extent.voxels,
                               weight: param(w, y.channels * x.channels), bias: bias.map { param($0, y.channels) },
                               output: tensor(y), outChannels: y.channels)
            case let .globalMax(x, y):
                b.globalMaxForward(input: tensor(x), output: tensor(y), channels: x.channels, voxels: x.extent.voxels)
            case let .sigmoid(x, y):
                b.sigmoidForward(input: tensor(x), output: tensor(y))
            }
        }
    }

    /// Copies the segmentation probabilities [P, P, P] of the last forward pass.
    public func readSegmentation(into destination: UnsafeMutablePointer<Float>) {
        backend.download(tensor(graph.segProb), to: destination)
    }

    public func readSegmentation() -> [Float] { read(tensor(graph.segProb)) }

    /// Overlap of the last training forward pass's segmentation (> 0.5) with the target of the last `backward`,
    /// counted on the backend with the loss: three integers cross to the host, not the volume.
    public func trainingOverlap() -> (predicted: Int, reference: Int, intersection: Int) {
        guard let s = lastTrainingScalars else { preconditionFailure("trainingOverlap before any backward") }
        return (s.predicted, s.reference, s.intersection)
    }

    /// Completeness probability of the last forward pass.
    public var completeness: Double {
        var logit: Float = 0
        backend.download(tensor(graph.clsLogit), to: &logit)
        return 1 / (1 + exp(-Double(logit)))
    }

    // MARK: loss and backward

    public func zeroGradients() { backend.fill(gradients, value: 0) }

    /// Sends the loss's target and weight maps [P, P, P] for the coming `backward(completenessLabel:)`, best before
    /// the forward pass: a GPU copies them beside it (`ComputeBackend.uploadAhead`), where in the backward pass
    /// they held up the kernels (0.3 ms of a 26 ms step on an H200).
    public func setTargets(target: UnsafePointer<Float>, weight: UnsafePointer<Float>) {
        precondition(use == .training, "a network built for inference has no loss")
        backend.uploadAhead(target, to: targetTensor)
        backend.uploadAhead(weight, to: weightTensor)
        targetsSet = true
    }

    /// `setTargets`, then `backward(completenessLabel:)`.
    @discardableResult
    public func backward(target: UnsafePointer<Float>, weight: UnsafePointer<Float>, completenessLabel: Float,
                         whileQueued: () -> Void = {}) -> Loss {
        setTargets(target: target, weight: weight)
        return backward(completenessLabel: completenessLabel, whileQueued: whileQueued)
    }

    /// Loss of the last training forward pass against the maps of the last `setTargets`, and its gradients, added
    /// to `gradients`. completenessLabel: 0 or 1.
    /// The loss, its gradients at both logits and the overlap counts are computed on the backend, and the whole
    /// backward pass is queued before the host reads the loss back (one read, which on a GPU waits only for the
    /// loss): the device never idles for the host in between.
    /// `whileQueued` runs once the backward pass is queued, before the host waits for the loss: host work there
    /// (staging the next sample) overlaps the device's.
    @discardableResult
    public func backward(completenessLabel: Float, whileQueued: () -> Void = {}) -> Loss {
        precondition(use == .training, "a network built for inference has no backward pass")
        precondition(targetsSet, "backward(completenessLabel:) without setTargets for it")
        targetsSet = false
        backend.awaitUploads()
        backend.trainingLoss(prob: tensor(graph.segProb), target: targetTensor, weight: weightTensor,
                             lambda: Network.falsePositiveWeight, gradLogit: grad(graph.segLogit),
                             clsLogit: tensor(graph.clsLogit), completenessLabel: completenessLabel,
                             clsGradLogit: grad(graph.clsLogit))
        runBackward()
        whileQueued()
        let s = backend.readTrainingScalars()
        lastTrainingScalars = s
        return Loss(total: s.falsePositive + s.falseNegative + s.classification,
                    segmentation: s.falsePositive + s.falseNegative, classification: s.classification,
                    completeness: s.completeness)
    }

    func runBackward() {
        let b = backend
        for (index, mode) in backwardPlan {
            let op = graph.ops[index]
            let hasInputGrad = mode != .none
            if mode == .zeroThenAccumulate {
                switch op {
                case let .conv3(x, _, _, _), let .batchNorm(x, _, _, _, _), let .maxPool(x, _),
                     let .upsample(x, _), let .conv1(x, _, _, _), let .globalMax(x, _):
                    b.fill(grad(x), value: 0)
                default: break
                }
            }
            let accumulate = mode == .accumulate || mode == .zeroThenAccumulate
            switch op {
            case let .conv3(x, y, w, bias):
                let wc = y.channels * x.channels * 27
                b.conv3BackwardWeight(input: backwardInput(of: index, x), inChannels: x.channels, extent: x.extent,
                                      gradOutput: grad(y), outChannels: y.channels,
                                      gradWeight: paramGrad(w, wc), gradBias: bias.map { paramGrad($0, y.channels) })
                if hasInputGrad {
                    b.conv3BackwardData(gradOutput: grad(y), outChannels: y.channels, extent: x.extent,
                                        weight: param(w, wc), gradInput: grad(x), inChannels: x.channels,
                                        accumulate: accumulate)
                }
            case let .batchNorm(x, y, m, saved, relu):
                let bn = graph.batchNorms[m], c = x.channels
                b.batchNormBackward(input: tensor(x), gradOutput: grad(y), gradInput: grad(x),
                                    channels: c, voxels: x.extent.voxels, gamma: param(bn.gamma, c),
                                    saved: savedNorm(saved, channels: c),
                                    gradGamma: paramGrad(bn.gamma, c), gradBeta: paramGrad(bn.beta, c),
                                    relu: relu, accumulate: accumulate)
            case let .relu(x):
                b.reluBackward(output: tensor(x), grad: grad(x))
            case let .maxPool(x, y):
                b.maxPool2Backward(input: tensor(x), output: tensor(y), gradOutput: grad(y), gradInput: grad(x),
                                   channels: x.channels, extent: x.extent, accumulate: accumulate)
            case let .upsample(x, y):
                b.upsample2Backward(gradOutput: grad(y), gradInput: grad(x), channels: x.channels,
                                    extent: x.extent, accumulate: accumulate)
            case let .conv1(x, y, w, bias):
                b.conv1Backward(input: backwardInput(of: index, x), inChannels: x.channels, voxels: x.extent.voxels,
                                weight: param(w, y.channels * x.channels), gradOutput: grad(y), outChannels: y.channels,
                                gradInput: hasInputGrad ? grad(x) : nil, accumulate: accumulate,
                                gradWeight: paramGrad(w, y.channels * x.channels),
                                gradBias: bias.map { paramGrad($0, y.channels) })
            case let .globalMax(x, y):
                b.globalMaxBackward(input: tensor(x), output: tensor(y), gradOutput: grad(y), gradInput: grad(x),
                                    channels: x.channels, voxels: x.extent.voxels, accumulate: accumulate)
            case .sigmoid:
                break  // folded into the loss, which writes the gradient of the logits
            }
        }
    }

    /// The input `x` of op `index` for its backward pass: the activation the forward pass left, or, where the
    /// arena recomputes it (`TrainingArena.Recomputation`), the batch norm's output rewritten now into its own block.
    private func backwardInput(of index: Int, _ x: Activation) -> TensorRef {
        guard let r = trainingArena?.recomputations[index],
              case let .batchNorm(nx, _, _, saved, relu) = graph.ops[r.norm] else { return tensor(x) }
        let output = arena.slice(r.offset, x.count)
        backend.batchNormRecompute(input: tensor(nx), output: output, channels: nx.channels, voxels: nx.extent.voxels,
                                   saved: savedNorm(saved, channels: nx.channels), relu: relu)
        return output
    }

    /// Elements in the arena: activations, and for training their gradients (shared by liveness).
    public var arenaCount: Int { arena.count }

    /// Bytes of storage the network holds: parameters and their gradients, running statistics, saved batch statistics,
    /// target and weight patches in float32, and the arena in its format (`ComputeBackend.allocateActivations`).
    public var allocatedBytes: Int {
        4 * (2 * graph.parameters.total + graph.buffers.total + graph.savedStatsSize + 2 * config.voxels)
            + arena.count * arena.buffer.format.bytes
    }
}

extension Network {
    /// Multiply-add FLOPs (2 per MAC) of the convolutions and the linear layer in one forward pass.
    public var forwardFLOPs: Double {
        var f = 0.0
        for op in graph.ops {
            switch op {
            case let .conv3(x, y, _, _): f += 2 * 27 * Double(x.channels * y.channels) * Double(x.extent.voxels)
            case let .conv1(x, y, _, _): f += 2 * Double(x.channels * y.channels) * Double(x.extent.voxels)
            default: break
            }
        }
        return f
    }

    /// A training step costs about three forward passes (forward, data and weight gradients).
    public var trainingStepFLOPs: Double { 3 * forwardFLOPs }
}
