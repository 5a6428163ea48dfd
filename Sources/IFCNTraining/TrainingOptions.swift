import IFCNCompute
import IFCNEngine

/// Everything `ifcn train` is told.
public struct TrainingOptions: Sendable {
    public var dataDir: String
    public var outputDir: String
    public var variant: Variant = .paper
    public var channels = 64
    public var patch = 128
    public var iterations = 25_000
    public var iterationsPerEpoch = 500
    public var learningRate: Float = 1e-3
    /// Iterations after which the learning rate drops tenfold.
    public var learningRateSteps: [Int] = []
    /// How the learning rate follows the number of ranks.
    public var learningRateScaling: LearningRateScaling = .none
    /// Iterations over which the learning rate rises linearly from `learningRate` to its scaled value.
    public var warmupIterations = 0
    public var seed: UInt64 = 0
    public var threads: Int?
    public var backend: BackendKind = .auto
    /// Convolution math when the backend is CUDA.
    public var gpuMath: GPUMath = .tf32
    /// Memory order of the convolutions' operands when the backend is CUDA (nil: the math's default layout).
    public var gpuLayout: TensorLayout?
    /// The format of the training network's activations and their gradients when the backend is CUDA (nil: the
    /// math's, `GPUMath.defaultActivations`).
    public var gpuActivations: ElementFormat? = nil
    /// How gradients are averaged across ranks.
    public var allreduce: AllreduceMethod = .auto
    public var validationCases: Int?
    public var resume = false
    public var augmentations: Set<Augmentation> = Augmentation.defaults
    public var keepCheckpoints = 3
    /// Seconds between progress lines.
    public var progressInterval = 10.0
    /// Seconds a rank waits in a collective of the training loop before the job is ended as hung.
    public var collectiveTimeout = 300.0
    /// Hooks for tests (fault injection, gradient and weight dumps); none in normal use.
    public var testHooks = TrainingTestHooks()

    public init(dataDir: String, outputDir: String) {
        self.dataDir = dataDir
        self.outputDir = outputDir
    }

    /// The learning rate of `iteration` (1-based) with `ranks` ranks: `learningRate` scaled for the ranks (reached
    /// linearly over the warm-up, from `learningRate` at iteration 0), then a tenth of that after each of
    /// `learningRateSteps`. With scaling `none` it is `learningRate` whatever the ranks and warm-up.
    public func learningRate(at iteration: Int, ranks: Int = 1) -> Float {
        let base = Double(learningRate), scaled = base * learningRateScaling.factor(ranks: ranks)
        let ramp = warmupIterations > 0 && iteration < warmupIterations ? Double(max(iteration, 0)) / Double(warmupIterations) : 1
        let rate = Float(base + (scaled - base) * ramp)
        return learningRateSteps.filter { iteration > $0 }.reduce(rate) { lr, _ in lr * 0.1 }
    }
}

/// How the learning rate follows the number of ranks N. Every rank adds one sample to an averaged gradient,
/// so N ranks train with a global batch of N: `linear` multiplies the learning rate by N (Goyal et al. 2017, with
/// a warm-up), `sqrt` by sqrt(N) (the gradient noise argument for Adam), `none` keeps it (the default: no
/// measurement here supports another; README, "Training across ranks and nodes").
public enum LearningRateScaling: String, CaseIterable, Sendable {
    case none, linear, sqrt

    public func factor(ranks: Int) -> Double {
        switch self {
        case .none: 1
        case .linear: Double(max(ranks, 1))
        case .sqrt: Double(max(ranks, 1)).squareRoot()
        }
    }
}

/// Test-only hooks of a training run, kept apart from the options users set.
public struct TrainingTestHooks: Sendable {
    /// This rank exits at this iteration.
    public var dieAt: (rank: Int, iteration: Int)?
    /// This rank's device fails at the start of this iteration (as a driver error would end it: `DeviceFailure`).
    public var deviceFailureAt: (rank: Int, iteration: Int)?
    /// This rank sends itself `signal` at the start of this iteration (SIGSTOP: a hung rank; SIGTERM: preemption).
    public var raiseAt: (rank: Int, iteration: Int, signal: Int32)?
    /// Draw the samples of this rank's stream instead of the process's own rank.
    public var sampleRank: Int?
    /// After the first iteration's allreduce, each rank writes its averaged gradient to
    /// `<path>.rank<r>.safetensors`.
    public var dumpGradients: String?
    /// After the last iteration, each rank writes its weights to `<path>.rank<r>.safetensors`.
    public var dumpWeights: String?
    public init() {}
}
