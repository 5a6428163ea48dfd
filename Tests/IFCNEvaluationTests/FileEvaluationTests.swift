import Foundation
import XCTest
@testable import IFCNEvaluation

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
    func writeMHA(_ labels: LabelMap, _ relativePath: String) throws {
        let s = labels.size, d = labels.spacing
        let header = """
            ObjectType = Image
            NDims = 3
            BinaryData = True
            BinaryDataByteOrderMSB = False
            CompressedData = False
            TransformMatrix = 1 0 0 0 1 0 0 0 1
            Offset = 0 0 0
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

    func testDifferentGridsAreAnErrorNamingBothFiles() throws {
        let reference = try Fixtures.labelMap("case1", "reference")
        var prediction = reference
        prediction.spacing = SIMD3(1, 1, 1)
        try writeMHA(reference, "ref/a_label.mha")
        try writeMHA(prediction, "pred/a.mha")
        let pairing = try pairCases(reference: root.appendingPathComponent("ref").path,
                                    prediction: root.appendingPathComponent("pred").path)
        XCTAssertThrowsError(try evaluateCases(pairing)) { error in
            XCTAssertTrue("\(error)".contains("pred/a.mha"), "\(error)")
            XCTAssertTrue("\(error)".contains("ref/a_label.mha"), "\(error)")
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
