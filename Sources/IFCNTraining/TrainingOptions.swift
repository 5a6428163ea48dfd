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
    public var seed: UInt64 = 0
    public var threads: Int?
    public var backend: BackendKind = .auto
    /// Convolution math when the backend is CUDA.
    public var gpuMath: GPUMath = .tf32
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

    public func learningRate(at iteration: Int) -> Float {
        learningRateSteps.filter { iteration > $0 }.reduce(learningRate) { lr, _ in lr * 0.1 }
    }
}

/// Test-only hooks of a training run, kept apart from the options users set.
public struct TrainingTestHooks: Sendable {
    /// This rank exits at this iteration.
    public var dieAt: (rank: Int, iteration: Int)?
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
