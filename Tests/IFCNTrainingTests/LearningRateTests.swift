import IFCNTraining
import XCTest

/// The learning-rate schedule: scaling for the ranks, warm-up, tenfold drops.
final class LearningRateTests: XCTestCase {
    func options(_ scaling: LearningRateScaling, warmup: Int = 0, steps: [Int] = []) -> TrainingOptions {
        var o = TrainingOptions(dataDir: "d", outputDir: "o")
        o.learningRate = 1e-3
        o.learningRateScaling = scaling
        o.warmupIterations = warmup
        o.learningRateSteps = steps
        return o
    }

    /// `none` is the schedule ifcn always had: the same bits at any rank count and warm-up.
    func testNoScalingKeepsTheLearningRate() {
        let o = options(.none, warmup: 100, steps: [1000])
        for ranks in [1, 2, 8] {
            XCTAssertEqual(o.learningRate(at: 1, ranks: ranks), 1e-3)
            XCTAssertEqual(o.learningRate(at: 50, ranks: ranks), 1e-3)
            XCTAssertEqual(o.learningRate(at: 1001, ranks: ranks), Float(1e-3) * 0.1)
        }
    }

    func testLinearAndSqrtScalingAfterTheWarmUp() {
        XCTAssertEqual(options(.linear).learningRate(at: 1, ranks: 8), 8e-3, accuracy: 1e-9)
        XCTAssertEqual(options(.sqrt).learningRate(at: 1, ranks: 4), 2e-3, accuracy: 1e-9)
        XCTAssertEqual(options(.linear).learningRate(at: 1, ranks: 1), 1e-3)
        // A drop applies to the scaled rate.
        XCTAssertEqual(options(.linear, steps: [10]).learningRate(at: 11, ranks: 4), 4e-4, accuracy: 1e-10)
    }

    /// The warm-up rises linearly from --lr to the scaled rate, reached at its last iteration.
    func testWarmUpRisesLinearly() {
        let o = options(.linear, warmup: 100)
        XCTAssertEqual(o.learningRate(at: 0, ranks: 5), 1e-3, accuracy: 1e-9)
        XCTAssertEqual(o.learningRate(at: 50, ranks: 5), 3e-3, accuracy: 1e-9)
        XCTAssertEqual(o.learningRate(at: 100, ranks: 5), 5e-3, accuracy: 1e-9)
        XCTAssertEqual(o.learningRate(at: 5000, ranks: 5), 5e-3, accuracy: 1e-9)
        XCTAssertLessThan(o.learningRate(at: 10, ranks: 5), o.learningRate(at: 11, ranks: 5))
    }

    func testNegativeWarmUpIsRefused() {
        var o = options(.linear)
        o.warmupIterations = -1
        XCTAssertThrowsError(try o.validate()) { XCTAssertTrue("\($0)".contains("--warmup-iterations"), "\($0)") }
    }
}
