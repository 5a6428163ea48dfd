import Foundation
import IFCNTraining
import XCTest

/// metrics.jsonl lines: every key present, null where a value does not exist.
final class EpochMetricsTests: XCTestCase {
    func metrics(trainDice: Double?, valDice: Double?, valASSD: Double?) -> EpochMetrics {
        EpochMetrics(epoch: 2, iteration: 4, trainLoss: 1075.2956498448762, trainDice: trainDice, completenessAccuracy: 1,
                     valDice: valDice, valASSDmm: valASSD, valEvaluations: 12, seconds: 0.023707032203674316,
                     validationSeconds: 0.047849297523498535, samplesPerSecond: 84.36315363379913,
                     allreduceShare: 0.00019669452331838792, ranks: 1, learningRate: Double(Float(1e-3)))
    }

    func testNullsAreWrittenAndTheLineRoundTrips() throws {
        let m = metrics(trainDice: nil, valDice: 0, valASSD: nil)
        let line = try m.jsonLine()
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: line) as? [String: Any])
        XCTAssertEqual(Set(object.keys), ["epoch", "iteration", "train_loss", "train_dice", "completeness_accuracy", "val_dice",
                                          "val_assd_mm", "val_evaluations", "seconds", "validation_seconds",
                                          "samples_per_second", "allreduce_share", "ranks", "learning_rate"])
        XCTAssertTrue(object["train_dice"] is NSNull)
        XCTAssertTrue(object["val_assd_mm"] is NSNull)
        XCTAssertEqual(object["val_dice"] as? Double, 0)
        XCTAssertEqual(try JSONDecoder().decode(EpochMetrics.self, from: line), m)
    }

    /// The same text as the dictionary written through JSONSerialization before the struct existed.
    func testLineMatchesTheDictionaryEncoding() throws {
        for m in [metrics(trainDice: nil, valDice: nil, valASSD: nil), metrics(trainDice: 0.25, valDice: 0.8125, valASSD: 1.5)] {
            let dictionary: [String: Any] = [
                "epoch": m.epoch, "iteration": m.iteration, "train_loss": m.trainLoss,
                "train_dice": m.trainDice ?? NSNull(), "completeness_accuracy": m.completenessAccuracy,
                "val_dice": m.valDice ?? NSNull(), "val_assd_mm": m.valASSDmm ?? NSNull(), "val_evaluations": m.valEvaluations,
                "seconds": m.seconds, "validation_seconds": m.validationSeconds, "samples_per_second": m.samplesPerSecond,
                "allreduce_share": m.allreduceShare, "ranks": m.ranks, "learning_rate": m.learningRate,
            ]
            let expected = try JSONSerialization.data(withJSONObject: dictionary, options: [.sortedKeys])
            XCTAssertEqual(String(decoding: try m.jsonLine(), as: UTF8.self), String(decoding: expected, as: UTF8.self))
        }
    }
}
