import XCTest
@testable import IFCNEvaluation

final class CaseEvaluationTests: XCTestCase {
    /// Every fixture case against the scipy/numpy evaluation of make_fixtures.py: matching, Dice, ASSD
    /// (computed there on the full grid, here in bounding boxes), completeness and false positives.
    func testFixtureCasesMatchScipy() throws {
        let cases = try XCTUnwrap(try Fixtures.expected()["cases"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 3)
        for expected in cases {
            let name = try XCTUnwrap(expected["case"] as? String)
            let result = try evaluateCase(name: name, reference: Fixtures.labelMap(name, "reference"),
                                          prediction: Fixtures.labelMap(name, "prediction"))
            XCTAssertEqual(result.falsePositives.map(Int.init), expected["false_positives"] as? [Int], name)
            let vertebrae = try XCTUnwrap(expected["vertebrae"] as? [[String: Any]])
            XCTAssertEqual(result.vertebrae.count, vertebrae.count, name)
            for (got, want) in zip(result.vertebrae, vertebrae) {
                let label = "\(name) vertebra \(got.referenceLabel)"
                XCTAssertEqual(Int(got.referenceLabel), want["reference_label"] as? Int, label)
                XCTAssertEqual(got.predictedLabel.map(Int.init), want["predicted_label"] as? Int, label)
                XCTAssertEqual(got.dice, try XCTUnwrap(want["dice"] as? Double), accuracy: 1e-15, label)
                XCTAssertEqual(got.complete, want["complete"] as? Bool, label)
                if let assd = want["assd_mm"] as? Double {
                    XCTAssertEqual(try XCTUnwrap(got.assdMM, label), assd, accuracy: 1e-12, label)
                } else {
                    XCTAssertNil(got.assdMM, label)
                }
            }
        }
    }

    /// Missed vertebra (Dice 0, no ASSD), a false positive, and the case means over all and complete vertebrae.
    func testMissedVertebraFalsePositiveAndMeans() throws {
        let size = SIMD3(8, 8, 12)
        let reference = labelMap(size, [(20, SIMD3(1, 1, 0), SIMD3(5, 5, 2)),     // touches z = 0
                                        (21, SIMD3(1, 1, 4), SIMD3(5, 5, 6)),
                                        (22, SIMD3(1, 1, 8), SIMD3(5, 5, 10))])  // missed
        let prediction = labelMap(size, [(1, SIMD3(1, 1, 0), SIMD3(5, 5, 2)),
                                         (2, SIMD3(1, 1, 4), SIMD3(5, 5, 6)),
                                         (3, SIMD3(7, 7, 11), SIMD3(7, 7, 11))])  // false positive
        let result = try evaluateCase(name: "c", reference: reference, prediction: prediction)
        XCTAssertEqual(result.vertebrae, [
            VertebraEvaluation(referenceLabel: 20, predictedLabel: 1, dice: 1, assdMM: 0, complete: false),
            VertebraEvaluation(referenceLabel: 21, predictedLabel: 2, dice: 1, assdMM: 0, complete: true),
            VertebraEvaluation(referenceLabel: 22, predictedLabel: nil, dice: 0, assdMM: nil, complete: true),
        ])
        XCTAssertEqual(result.falsePositives, [3])
        XCTAssertEqual(try XCTUnwrap(result.meanDice), 2.0 / 3.0, accuracy: 1e-15)
        XCTAssertEqual(result.meanASSDmm, 0)
        XCTAssertEqual(result.meanDiceComplete, 0.5)
        XCTAssertEqual(result.meanASSDmmComplete, 0)
    }

    /// Completeness follows the spine axis: touching the last slice of that axis makes a vertebra incomplete.
    func testCompletenessAlongSpineAxis() throws {
        let size = SIMD3(6, 10, 6)
        let boxes: [(label: Int32, lower: SIMD3<Int>, upper: SIMD3<Int>)] = [
            (1, SIMD3(1, 1, 0), SIMD3(4, 3, 2)),   // touches z = 0, not the y border
            (2, SIMD3(1, 6, 2), SIMD3(4, 9, 4)),   // touches y = 9, not the z border
        ]
        let alongZ = try evaluateCase(reference: labelMap(size, boxes), prediction: labelMap(size, boxes))
        XCTAssertEqual(alongZ.vertebrae.map(\.complete), [false, true])
        let alongY = try evaluateCase(reference: labelMap(size, spineAxis: 1, boxes),
                                      prediction: labelMap(size, boxes))
        XCTAssertEqual(alongY.vertebrae.map(\.complete), [true, false])
    }

    func testSpineAxisFromDirection() {
        XCTAssertEqual(LabelMap.spineAxis(direction: [1, 0, 0, 0, 1, 0, 0, 0, 1]), 2)
        // VerSe storage P-I-R in LPS: axis 0 -> +y, axis 1 -> -z (inferior), axis 2 -> -x.
        XCTAssertEqual(LabelMap.spineAxis(direction: [0, 0, -1, 1, 0, 0, 0, -1, 0]), 1)
        XCTAssertEqual(LabelMap.spineAxis(direction: [0, 0.1, 0.99, 0, 0.99, -0.1, 0.98, 0, 0.2]), 0)
        XCTAssertEqual(LabelMap.spineAxis(direction: [1, 0]), 2)
    }

    /// ASSD of a pair in its bounding box equals ASSD over the whole grid, also when the masks touch the border.
    func testBoundingBoxRestrictionIsExact() throws {
        let size = SIMD3(14, 12, 9), spacing = SIMD3(0.8, 1.0, 2.5)
        let reference = labelMap(size, spacing: spacing, [(5, SIMD3(0, 2, 1), SIMD3(6, 7, 4)),
                                                          (5, SIMD3(3, 5, 4), SIMD3(9, 11, 8))])
        let prediction = labelMap(size, spacing: spacing, [(6, SIMD3(1, 2, 0), SIMD3(7, 9, 5)),
                                                           (6, SIMD3(8, 8, 6), SIMD3(13, 11, 8))])
        let result = try evaluateCase(reference: reference, prediction: prediction)
        let full = averageSymmetricSurfaceDistance(a: reference.labels.map { $0 == 5 }, b: prediction.labels.map { $0 == 6 },
                                                   size: size, spacing: spacing)
        XCTAssertEqual(try XCTUnwrap(result.vertebrae.first?.assdMM), try XCTUnwrap(full), accuracy: 1e-12)
        XCTAssertGreaterThan(try XCTUnwrap(full), 0)
    }

    func testGridMismatchThrows() {
        let a = LabelMap(size: SIMD3(2, 2, 2), spacing: SIMD3(1, 1, 1), labels: [Int32](repeating: 1, count: 8))
        let b = LabelMap(size: SIMD3(2, 2, 1), spacing: SIMD3(1, 1, 1), labels: [Int32](repeating: 1, count: 4))
        let c = LabelMap(size: SIMD3(2, 2, 2), spacing: SIMD3(1, 1, 2), labels: [Int32](repeating: 1, count: 8))
        XCTAssertThrowsError(try evaluateCase(name: "x", reference: a, prediction: b)) { error in
            XCTAssertTrue("\(error)".contains("grid"), "\(error)")
        }
        XCTAssertThrowsError(try evaluateCase(name: "x", reference: a, prediction: c)) { error in
            XCTAssertTrue("\(error)".contains("spacing"), "\(error)")
        }
    }

    /// Overall means pool all vertebrae of all cases (not the mean of case means).
    func testSummaryPoolsVertebrae() throws {
        let one = CaseEvaluation(name: "a", vertebrae: [
            VertebraEvaluation(referenceLabel: 1, predictedLabel: 1, dice: 0.9, assdMM: 1.0, complete: true)],
                                 falsePositives: [4])
        let two = CaseEvaluation(name: "b", vertebrae: [
            VertebraEvaluation(referenceLabel: 1, predictedLabel: 2, dice: 0.6, assdMM: 2.5, complete: false),
            VertebraEvaluation(referenceLabel: 2, predictedLabel: nil, dice: 0, assdMM: nil, complete: true)],
                                 falsePositives: [])
        let summary = EvaluationSummary(cases: [one, two])
        XCTAssertEqual(try XCTUnwrap(summary.meanDice), 1.5 / 3, accuracy: 1e-15)
        XCTAssertEqual(try XCTUnwrap(summary.meanASSDmm), 1.75, accuracy: 1e-15)
        XCTAssertEqual(try XCTUnwrap(summary.meanDiceComplete), 0.45, accuracy: 1e-15)
        XCTAssertEqual(summary.meanASSDmmComplete, 1.0)
        XCTAssertEqual(summary.vertebraCount, 3)
        XCTAssertEqual(summary.missedCount, 1)
        XCTAssertEqual(summary.falsePositiveCount, 1)
        XCTAssertNil(EvaluationSummary(cases: []).meanDice)
    }
}
