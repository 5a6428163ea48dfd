import Foundation

/// One line of RUN/metrics.jsonl: an epoch's training statistics pooled over ranks and its validation.
/// Values that do not exist (no validation vertebra, no non-empty training sample) are written as null;
/// the key is always present.
public struct EpochMetrics: Codable, Equatable, Sendable {
    /// 1-based epoch index.
    public var epoch: Int
    /// Iteration the epoch ended at.
    public var iteration: Int
    /// Mean training loss over the epoch's samples.
    public var trainLoss: Double
    /// Mean Dice of the training patches with a target; nil when there was none.
    public var trainDice: Double?
    /// Fraction of samples whose completeness was classified right.
    public var completenessAccuracy: Double
    /// Mean validation Dice over all validation vertebrae; nil when there were none.
    public var valDice: Double?
    /// Mean validation ASSD in mm; nil when no vertebra was matched.
    public var valASSDmm: Double?
    /// Network evaluations spent on validation.
    public var valEvaluations: Int
    /// Wall-clock seconds of the epoch's training iterations.
    public var seconds: Double
    /// Wall-clock seconds of the validation.
    public var validationSeconds: Double
    public var samplesPerSecond: Double
    /// Share of the allreduce in allreduce + compute time.
    public var allreduceShare: Double
    public var ranks: Int
    /// Learning rate at the epoch's last iteration.
    public var learningRate: Double

    public init(epoch: Int, iteration: Int, trainLoss: Double, trainDice: Double?, completenessAccuracy: Double,
                valDice: Double?, valASSDmm: Double?, valEvaluations: Int, seconds: Double, validationSeconds: Double,
                samplesPerSecond: Double, allreduceShare: Double, ranks: Int, learningRate: Double) {
        self.epoch = epoch
        self.iteration = iteration
        self.trainLoss = trainLoss
        self.trainDice = trainDice
        self.completenessAccuracy = completenessAccuracy
        self.valDice = valDice
        self.valASSDmm = valASSDmm
        self.valEvaluations = valEvaluations
        self.seconds = seconds
        self.validationSeconds = validationSeconds
        self.samplesPerSecond = samplesPerSecond
        self.allreduceShare = allreduceShare
        self.ranks = ranks
        self.learningRate = learningRate
    }

    enum CodingKeys: String, CodingKey {
        case epoch, iteration, trainLoss = "train_loss", trainDice = "train_dice"
        case completenessAccuracy = "completeness_accuracy", valDice = "val_dice", valASSDmm = "val_assd_mm"
        case valEvaluations = "val_evaluations", seconds, validationSeconds = "validation_seconds"
        case samplesPerSecond = "samples_per_second", allreduceShare = "allreduce_share", ranks
        case learningRate = "learning_rate"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(epoch, forKey: .epoch)
        try c.encode(iteration, forKey: .iteration)
        try c.encode(trainLoss, forKey: .trainLoss)
        try c.encode(trainDice, forKey: .trainDice)  // explicit null
        try c.encode(completenessAccuracy, forKey: .completenessAccuracy)
        try c.encode(valDice, forKey: .valDice)  // explicit null
        try c.encode(valASSDmm, forKey: .valASSDmm)  // explicit null
        try c.encode(valEvaluations, forKey: .valEvaluations)
        try c.encode(seconds, forKey: .seconds)
        try c.encode(validationSeconds, forKey: .validationSeconds)
        try c.encode(samplesPerSecond, forKey: .samplesPerSecond)
        try c.encode(allreduceShare, forKey: .allreduceShare)
        try c.encode(ranks, forKey: .ranks)
        try c.encode(learningRate, forKey: .learningRate)
    }

    /// The line written to metrics.jsonl (keys sorted, no newline).
    public func jsonLine() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(self)
    }
}
