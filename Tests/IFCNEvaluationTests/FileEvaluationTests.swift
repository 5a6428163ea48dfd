import Foundation
import XCTest
@testable import IFCNEvaluation
import IFCNVolume

/// End to end through IFCNVolume's reader: fixture label maps written as tiny MetaImage (.mha) files by hand.
final class FileEvaluationTests: XCTestCase {
    var root: URL!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("ifcn-eval-files-\(UUID().uuidString)")
        for side in ["ref", "pred"] {
            try FileManager.default.createDirectory(at: root.appendingPathComponent(side), withIntermediateDirectories: true)
        }
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: root)
    }

    /// Writes an 8-bit MetaImage with its data in the same file.
    func writeMHA(_ labels: LabelMap, _ relativePath: String, transform: String = "1 0 0 0 1 0 0 0 1",
                  offset: String = "0 0 0") throws {
        let s = labels.size, d = labels.spacing
        let header = """
            ObjectType = Image
            NDims = 3
            BinaryData = True
            BinaryDataByteOrderMSB = False
            CompressedData = False
            TransformMatrix = \(transform)
            Offset = \(offset)
            ElementSpacing = \(d.x) \(d.y) \(d.z)
            DimSize = \(s.x) \(s.y) \(s.z)
            ElementType = MET_UCHAR
            ElementDataFile = LOCAL

            """
        var data = Data(header.utf8)
        data.append(contentsOf: labels.labels.map { UInt8($0) })
        try data.write(to: root.appendingPathComponent(relativePath))
    }

    func testDirectoriesAreEvaluatedLikeTheFixtures() throws {
        for name in ["case1", "case2"] {
            try writeMHA(Fixtures.labelMap(name, "reference"), "ref/\(name)_label.mha")
            try writeMHA(Fixtures.labelMap(name, "prediction"), "pred/\(name)_seg.mha")
        }
        try writeMHA(Fixtures.labelMap("case3", "prediction"), "pred/case3.mha")  // no reference: ignored
        let pairing = try pairCases(reference: root.appendingPathComponent("ref").path,
                                    prediction: root.appendingPathComponent("pred").path)
        XCTAssertEqual(pairing.pairs.map(\.name), ["case1", "case2"])
        XCTAssertEqual(pairing.unpairedPredictions, [root.appendingPathComponent("pred/case3.mha").path])
        let summary = try evaluateCases(pairing)

        let expectedCases = try XCTUnwrap(try Fixtures.expected()["cases"] as? [[String: Any]])
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: EvaluationReport.json(summary)) as? [String: Any])
        let cases = try XCTUnwrap(json["cases"] as? [[String: Any]])
        XCTAssertEqual(cases.map { $0["case"] as? String }, ["case1", "case2"])
        var allDice: [Double] = [], allASSD: [Double] = []
        for (got, want) in zip(cases, expectedCases) {
            XCTAssertEqual(got["false_positives"] as? [Int], want["false_positives"] as? [Int])
            let gotVertebrae = try XCTUnwrap(got["vertebrae"] as? [[String: Any]])
            let wantVertebrae = try XCTUnwrap(want["vertebrae"] as? [[String: Any]])
            XCTAssertEqual(gotVertebrae.count, wantVertebrae.count)
            for (g, w) in zip(gotVertebrae, wantVertebrae) {
                XCTAssertEqual(g["reference_label"] as? Int, w["reference_label"] as? Int)
                XCTAssertEqual(g["predicted_label"] as? Int, w["predicted_label"] as? Int)
                XCTAssertEqual((g["predicted_label"] is NSNull), (w["predicted_label"] is NSNull))
                XCTAssertEqual(try XCTUnwrap(g["dice"] as? Double), try XCTUnwrap(w["dice"] as? Double), accuracy: 1e-15)
                XCTAssertEqual(g["complete"] as? Bool, w["complete"] as? Bool)
                if let assd = w["assd_mm"] as? Double {
                    XCTAssertEqual(try XCTUnwrap(g["assd_mm"] as? Double), assd, accuracy: 1e-12)
                    allASSD.append(assd)
                } else {
                    XCTAssertTrue(g["assd_mm"] is NSNull)
                }
                allDice.append(try XCTUnwrap(w["dice"] as? Double))
            }
        }
        XCTAssertEqual(try XCTUnwrap(json["mean_dice"] as? Double), allDice.reduce(0, +) / Double(allDice.count), accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(json["mean_assd_mm"] as? Double), allASSD.reduce(0, +) / Double(allASSD.count),
                       accuracy: 1e-12)
    }

    /// Evaluates the one case written under ref/ and pred/.
    func evaluateOne() throws -> EvaluationSummary {
        try evaluateCases(try pairCases(reference: root.appendingPathComponent("ref").path,
                                        prediction: root.appendingPathComponent("pred").path))
    }

    /// A correct mask placed 500 mm away, or half outside the scan, must not score: it is refused, naming both files.
    func testPredictionElsewhereIsAnErrorNamingBothFiles() throws {
        let reference = try Fixtures.labelMap("case1", "reference")
        try writeMHA(reference, "ref/a_label.mha")
        for offset in ["500 0 0", "0 0 \(Double(reference.size.z) * reference.spacing.z / 2)"] {
            try writeMHA(reference, "pred/a.mha", offset: offset)
            XCTAssertThrowsError(try evaluateOne(), offset) { error in
                XCTAssertTrue("\(error)".contains("pred/a.mha"), "\(error)")
                XCTAssertTrue("\(error)".contains("ref/a_label.mha"), "\(error)")
                XCTAssertTrue("\(error)".contains("does not cover"), "\(error)")
            }
        }
    }

    /// The same mask stored with the x axis flipped (direction -x, origin at the far end, voxels reversed)
    /// is the same mask in world space: Dice 1 for every vertebra.
    func testFlippedStorageIsTheSameMask() throws {
        let reference = try Fixtures.labelMap("case1", "reference")
        let n = reference.size
        var flipped = reference
        for z in 0..<n.z { for y in 0..<n.y { for x in 0..<n.x {
            flipped.labels[x + n.x * (y + n.y * z)] = reference.labels[(n.x - 1 - x) + n.x * (y + n.y * z)]
        } } }
        try writeMHA(reference, "ref/a_label.mha")
        try writeMHA(flipped, "pred/a.mha", transform: "-1 0 0 0 1 0 0 0 1",
                     offset: "\(Double(n.x - 1) * reference.spacing.x) 0 0")
        let summary = try evaluateOne()
        let vertebrae = summary.cases.flatMap(\.vertebrae)
        XCTAssertGreaterThan(vertebrae.count, 1)
        for v in vertebrae { XCTAssertEqual(v.dice, 1, accuracy: 1e-12, "label \(v.referenceLabel)") }
        XCTAssertTrue(summary.cases.allSatisfy { $0.falsePositives.isEmpty })
    }

    /// A prediction on a finer, rotated (oblique) grid that covers the scan is resampled onto the reference
    /// grid: the mask resampled there and back scores close to 1, and every vertebra is matched.
    func testObliqueCopyIsResampledOntoTheReferenceGrid() throws {
        let reference = try Fixtures.labelMap("case1", "reference")
        let refGrid = Grid(size: reference.size, spacing: reference.spacing, origin: .zero, direction: Grid.identity)
        let angle = 12.0 * Double.pi / 180, c = cos(angle), s = sin(angle)
        let extent = SIMD3<Double>(reference.size) * reference.spacing
        let spacing = reference.spacing * 0.7
        // Rotated about z, centred on the reference box, large enough to cover it.
        let size = SIMD3<Int>((extent * 1.5 / spacing).rounded(.up))
        let direction = [c, -s, 0, s, c, 0, 0, 0, 1]
        var oblique = Grid(size: size, spacing: spacing, origin: .zero, direction: direction)
        let centre = extent / 2 - reference.spacing / 2
        oblique.origin = centre - (oblique.world(SIMD3<Double>(size &- 1) / 2) - oblique.origin)
        let moved = resample(LabelVolume(grid: refGrid, voxels: reference.labels), onto: oblique)
        try writeMHA(reference, "ref/a_label.mha")
        try VolumeIO.write(moved, to: root.appendingPathComponent("pred/a.mha").path, as: .uint8)
        let summary = try evaluateOne()
        let vertebrae = summary.cases.flatMap(\.vertebrae)
        XCTAssertGreaterThan(vertebrae.count, 1)
        for v in vertebrae {
            XCTAssertNotNil(v.predictedLabel, "label \(v.referenceLabel) unmatched")
            XCTAssertGreaterThan(v.dice, 0.8, "label \(v.referenceLabel)")
            XCTAssertLessThan(v.dice, 1.0 + 1e-12)
        }
    }

    func testUnreadableFileIsAnErrorNamingIt() throws {
        try Data("not an image".utf8).write(to: root.appendingPathComponent("ref/b_label.mha"))
        try writeMHA(Fixtures.labelMap("case1", "prediction"), "pred/b.mha")
        let pairing = try pairCases(reference: root.appendingPathComponent("ref").path,
                                    prediction: root.appendingPathComponent("pred").path)
        XCTAssertThrowsError(try evaluateCases(pairing)) { error in
            XCTAssertTrue("\(error)".contains("b_label.mha"), "\(error)")
        }
    }
}
