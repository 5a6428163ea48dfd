import Foundation
import IFCNSupport

/// Result for one reference vertebra.
public struct VertebraEvaluation: Codable, Equatable, Sendable {
    /// Label of the vertebra in the reference.
    public var referenceLabel: Int32
    /// Label of the matched predicted instance; nil when the vertebra was missed.
    public var predictedLabel: Int32?
    /// Dice with the matched instance; 0 when missed.
    public var dice: Double
    /// Average symmetric surface distance in mm; nil when missed.
    public var assdMM: Double?
    /// True when the vertebra touches neither the first nor the last slice along the spine axis.
    public var complete: Bool

    public init(referenceLabel: Int32, predictedLabel: Int32?, dice: Double, assdMM: Double?, complete: Bool) {
        self.referenceLabel = referenceLabel
        self.predictedLabel = predictedLabel
        self.dice = dice
        self.assdMM = assdMM
        self.complete = complete
    }

    enum CodingKeys: String, CodingKey {
        case referenceLabel = "reference_label", predictedLabel = "predicted_label"
        case dice, assdMM = "assd_mm", complete
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(referenceLabel, forKey: .referenceLabel)
        try c.encode(predictedLabel, forKey: .predictedLabel)  // explicit null when missed
        try c.encode(dice, forKey: .dice)
        try c.encode(assdMM, forKey: .assdMM)
        try c.encode(complete, forKey: .complete)
    }
}

/// Evaluation of one case: every reference vertebra, the false positives and the case means.
public struct CaseEvaluation: Codable, Equatable, Sendable {
    /// Case name.
    public var name: String
    /// One entry per reference vertebra, by ascending reference label.
    public var vertebrae: [VertebraEvaluation]
    /// Predicted labels matched to no reference vertebra, ascending.
    public var falsePositives: [Int32]
    /// Mean Dice over all reference vertebrae (missed ones count 0); nil without reference vertebrae.
    public var meanDice: Double?
    /// Mean ASSD over matched vertebrae; nil when none matched.
    public var meanASSDmm: Double?
    /// Mean Dice over completely visible reference vertebrae; nil when there are none.
    public var meanDiceComplete: Double?
    /// Mean ASSD over matched completely visible vertebrae; nil when there are none.
    public var meanASSDmmComplete: Double?

    /// Builds a case from its vertebra results, computing the means.
    public init(name: String, vertebrae: [VertebraEvaluation], falsePositives: [Int32]) {
        self.name = name
        self.vertebrae = vertebrae
        self.falsePositives = falsePositives
        let complete = vertebrae.filter(\.complete)
        meanDice = mean(vertebrae.map(\.dice))
        meanASSDmm = mean(vertebrae.compactMap(\.assdMM))
        meanDiceComplete = mean(complete.map(\.dice))
        meanASSDmmComplete = mean(complete.compactMap(\.assdMM))
    }

    enum CodingKeys: String, CodingKey {
        case name = "case", vertebrae, falsePositives = "false_positives"
        case meanDice = "mean_dice", meanASSDmm = "mean_assd_mm"
        case meanDiceComplete = "mean_dice_complete", meanASSDmmComplete = "mean_assd_mm_complete"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(vertebrae, forKey: .vertebrae)
        try c.encode(falsePositives, forKey: .falsePositives)
        try c.encode(meanDice, forKey: .meanDice)
        try c.encode(meanASSDmm, forKey: .meanASSDmm)
        try c.encode(meanDiceComplete, forKey: .meanDiceComplete)
        try c.encode(meanASSDmmComplete, forKey: .meanASSDmmComplete)
    }
}

/// Means over all cases.
public struct EvaluationSummary: Codable, Equatable, Sendable {
    /// The cases, in the order given.
    public var cases: [CaseEvaluation]
    /// Mean Dice over all reference vertebrae of all cases (missed ones count 0); nil when there are none.
    public var meanDice: Double?
    /// Mean ASSD over all matched vertebrae of all cases; nil when none matched.
    public var meanASSDmm: Double?
    /// Mean Dice over all completely visible reference vertebrae.
    public var meanDiceComplete: Double?
    /// Mean ASSD over all matched completely visible vertebrae.
    public var meanASSDmmComplete: Double?
    /// Reference vertebrae over all cases.
    public var vertebraCount: Int
    /// Reference vertebrae without a match over all cases.
    public var missedCount: Int
    /// False positive instances over all cases.
    public var falsePositiveCount: Int

    /// Pools the vertebrae of all cases.
    public init(cases: [CaseEvaluation]) {
        self.cases = cases
        let all = cases.flatMap(\.vertebrae)
        let complete = all.filter(\.complete)
        meanDice = mean(all.map(\.dice))
        meanASSDmm = mean(all.compactMap(\.assdMM))
        meanDiceComplete = mean(complete.map(\.dice))
        meanASSDmmComplete = mean(complete.compactMap(\.assdMM))
        vertebraCount = all.count
        missedCount = all.filter { $0.predictedLabel == nil }.count
        falsePositiveCount = cases.reduce(0) { $0 + $1.falsePositives.count }
    }

    enum CodingKeys: String, CodingKey {
        case cases, meanDice = "mean_dice", meanASSDmm = "mean_assd_mm"
        case meanDiceComplete = "mean_dice_complete", meanASSDmmComplete = "mean_assd_mm_complete"
        case vertebraCount = "vertebrae", missedCount = "missed", falsePositiveCount = "false_positive_count"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(cases, forKey: .cases)
        try c.encode(meanDice, forKey: .meanDice)
        try c.encode(meanASSDmm, forKey: .meanASSDmm)
        try c.encode(meanDiceComplete, forKey: .meanDiceComplete)
        try c.encode(meanASSDmmComplete, forKey: .meanASSDmmComplete)
        try c.encode(vertebraCount, forKey: .vertebraCount)
        try c.encode(missedCount, forKey: .missedCount)
        try c.encode(falsePositiveCount, forKey: .falsePositiveCount)
    }
}

/// Arithmetic mean; nil for no values.
func mean(_ values: [Double]) -> Double? {
    values.isEmpty ? nil : values.reduce(0, +) / Double(values.count)
}

/// Evaluates one case: counts overlaps in one pass, matches reference vertebrae to predicted instances greedily
/// by overlap, and computes Dice, ASSD (in the union bounding box of each matched pair, vertebrae in parallel)
/// and completeness (not touching the first or last slice along the reference's spine axis).
/// Throws when the two maps differ in size or spacing. This is the entry point for validation during training.
public func evaluateCase(name: String = "", reference: LabelMap, prediction: LabelMap) throws -> CaseEvaluation {
    try checkSameGrid(reference: reference, prediction: prediction, name: name)
    let table = OverlapTable(reference: reference.labels, prediction: prediction.labels, size: reference.size)
    let matching = InstanceMatching(table)
    let labels = table.referenceCounts.keys.sorted()
    var results = [VertebraEvaluation?](repeating: nil, count: labels.count)
    results.withUnsafeMutableBufferPointer { out in
        parallelFor(parts: labels.count) { i in
            let label = labels[i]
            let box = table.referenceBoxes[label] ?? VoxelBox(lower: .zero, upper: .zero)
            let axis = reference.spineAxis
            let complete = box.lower[axis] > 0 && box.upper[axis] < reference.size[axis] - 1
            guard let predicted = matching.matches[label], let predictedBox = table.predictionBoxes[predicted] else {
                out[i] = VertebraEvaluation(referenceLabel: label, predictedLabel: nil, dice: 0, assdMM: nil,
                                            complete: complete)
                return
            }
            let assd = averageSymmetricSurfaceDistance(reference: reference, referenceLabel: label,
                                                       prediction: prediction, predictionLabel: predicted,
                                                       box: box.union(predictedBox))
            out[i] = VertebraEvaluation(referenceLabel: label, predictedLabel: predicted,
                                        dice: table.dice(reference: label, prediction: predicted),
                                        assdMM: assd, complete: complete)
        }
    }
    return CaseEvaluation(name: name, vertebrae: results.compactMap { $0 }, falsePositives: matching.falsePositives)
}

/// Throws unless both maps have the same size and (to a relative 1e-4) the same spacing.
public func checkSameGrid(reference: LabelMap, prediction: LabelMap, name: String) throws {
    guard reference.size == prediction.size else {
        throw EvaluationError("case \(name): reference grid \(describe(reference.size)) and prediction grid "
                              + "\(describe(prediction.size)) differ")
    }
    for axis in 0..<3 {
        let r = reference.spacing[axis], p = prediction.spacing[axis]
        guard abs(r - p) <= 1e-4 * Swift.max(abs(r), abs(p)) else {
            throw EvaluationError("case \(name): reference spacing \(describe(reference.spacing)) and prediction "
                                  + "spacing \(describe(prediction.spacing)) differ")
        }
    }
}

func describe(_ v: SIMD3<Int>) -> String { "\(v.x) x \(v.y) x \(v.z)" }
func describe(_ v: SIMD3<Double>) -> String { "\(v.x) x \(v.y) x \(v.z) mm" }

/// An evaluation failure, with a message that names the file or case and the problem.
public struct EvaluationError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
