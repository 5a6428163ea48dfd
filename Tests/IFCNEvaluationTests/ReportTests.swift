import Foundation
import IFCNVolume
import XCTest
@testable import IFCNEvaluation

final class ReportTests: XCTestCase {
    func sampleSummary() -> EvaluationSummary {
        EvaluationSummary(cases: [CaseEvaluation(name: "case,1", vertebrae: [
            VertebraEvaluation(referenceLabel: 20, predictedLabel: 3, dice: 0.875, assdMM: 0.5, complete: false),
            VertebraEvaluation(referenceLabel: 21, predictedLabel: nil, dice: 0, assdMM: nil, complete: true),
        ], falsePositives: [7, 9])])
    }

    /// The JSON report has exactly the required keys and types, with explicit nulls for missed vertebrae.
    func testJSONSchema() throws {
        let object = try JSONSerialization.jsonObject(with: EvaluationReport.json(sampleSummary()))
        let top = try XCTUnwrap(object as? [String: Any])
        XCTAssertEqual(try XCTUnwrap(top["mean_dice"] as? Double), 0.4375, accuracy: 1e-15)
        XCTAssertEqual(top["mean_assd_mm"] as? Double, 0.5)
        XCTAssertEqual(top["mean_dice_complete"] as? Double, 0)
        XCTAssertTrue(top["mean_assd_mm_complete"] is NSNull)
        let cases = try XCTUnwrap(top["cases"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 1)
        let c = cases[0]
        XCTAssertEqual(c["case"] as? String, "case,1")
        XCTAssertEqual(c["false_positives"] as? [Int], [7, 9])
        XCTAssertEqual(c["mean_dice"] as? Double, 0.4375)
        XCTAssertEqual(c["mean_assd_mm"] as? Double, 0.5)
        let vertebrae = try XCTUnwrap(c["vertebrae"] as? [[String: Any]])
        XCTAssertEqual(Set(vertebrae[0].keys), ["reference_label", "predicted_label", "dice", "assd_mm", "complete"])
        XCTAssertEqual(vertebrae[0]["reference_label"] as? Int, 20)
        XCTAssertEqual(vertebrae[0]["predicted_label"] as? Int, 3)
        XCTAssertEqual(vertebrae[0]["dice"] as? Double, 0.875)
        XCTAssertEqual(vertebrae[0]["assd_mm"] as? Double, 0.5)
        XCTAssertEqual(vertebrae[0]["complete"] as? Bool, false)
        XCTAssertTrue(vertebrae[1]["predicted_label"] is NSNull)
        XCTAssertTrue(vertebrae[1]["assd_mm"] is NSNull)
        XCTAssertEqual(vertebrae[1]["complete"] as? Bool, true)
        let decoded = try JSONDecoder().decode(EvaluationSummary.self, from: EvaluationReport.json(sampleSummary()))
        XCTAssertEqual(decoded, sampleSummary())
    }

    func testCSVRows() {
        XCTAssertEqual(EvaluationReport.csv(sampleSummary()), """
            case,reference_label,predicted_label,dice,assd_mm,complete
            "case,1",20,3,0.875,0.5,false
            "case,1",21,,0.0,,true

            """)
    }

    func testTableMentionsEveryVertebra() {
        let table = EvaluationReport.table(sampleSummary().cases[0])
        XCTAssertTrue(table.contains("0.8750"))
        XCTAssertTrue(table.contains("false positives: 7 9"))
        XCTAssertEqual(table.split(separator: "\n").count, 6)
    }

    func testCaseNames() {
        XCTAssertEqual(CaseNaming.caseName(forFile: "/d/sub-verse005_seg-vert_msk.nii.gz"), "sub-verse005")
        XCTAssertEqual(CaseNaming.caseName(forFile: "sub-verse005_ct.nii.gz"), "sub-verse005")
        XCTAssertEqual(CaseNaming.caseName(forFile: "case008_label.mhd"), "case008")
        XCTAssertEqual(CaseNaming.caseName(forFile: "case008.mhd"), "case008")
        XCTAssertEqual(CaseNaming.caseName(forFile: "a_seg.MHA"), "a")
        XCTAssertEqual(CaseNaming.caseName(forFile: "b.nii"), "b")
        XCTAssertEqual(CaseNaming.caseName(forFile: "_seg.nii"), "_seg")
        XCTAssertNil(CaseNaming.caseName(forFile: "case008.raw"))
        XCTAssertNil(CaseNaming.caseName(forFile: "notes.txt"))
    }

    func testPairingByCaseName() throws {
        let pairing = try pairCases(
            referenceFiles: ["r/case2_label.mhd", "r/case2_label.raw", "r/case1_label.mhd", "r/case1.mhd"],
            predictionFiles: ["p/case1_seg.nii.gz", "p/case2.mha", "p/case9_seg.nii.gz", "p/readme.txt"])
        XCTAssertEqual(pairing.pairs, [FilePair(name: "case1", reference: "r/case1_label.mhd", prediction: "p/case1_seg.nii.gz"),
                                       FilePair(name: "case2", reference: "r/case2_label.mhd", prediction: "p/case2.mha")])
        XCTAssertEqual(pairing.unpairedPredictions, ["p/case9_seg.nii.gz"])
    }

    func testMissingPredictionNamesTheReference() {
        XCTAssertThrowsError(try pairCases(referenceFiles: ["r/case1_label.mhd", "r/case3_label.mhd"],
                                           predictionFiles: ["p/case1.mhd"])) { error in
            XCTAssertEqual("\(error)", "r/case3_label.mhd: no prediction for case case3")
        }
    }

    func testAmbiguousFilesAreAnError() {
        XCTAssertThrowsError(try pairCases(referenceFiles: ["r/a_seg.nii", "r/a_label.mhd"], predictionFiles: ["p/a.nii"])) {
            XCTAssertTrue("\($0)".contains("r/a_label.mhd, r/a_seg.nii"), "\($0)")
        }
        XCTAssertThrowsError(try pairCases(referenceFiles: ["r/x.txt"], predictionFiles: [])) {
            XCTAssertTrue("\($0)".contains("no reference volumes"), "\($0)")
        }
    }

    /// Directories and single files given on the command line.
    func testPairingOnDisk() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("ifcn-eval-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let refs = root.appendingPathComponent("ref"), preds = root.appendingPathComponent("pred")
        for dir in [refs, preds] { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) }
        for file in ["ref/s1_ct.nii.gz", "ref/s1_seg-vert_msk.nii.gz", "pred/s1.nii.gz", "pred/other.mha"] {
            XCTAssertTrue(FileManager.default.createFile(atPath: root.appendingPathComponent(file).path, contents: Data()))
        }
        let pairing = try pairCases(reference: refs.path, prediction: preds.path)
        XCTAssertEqual(pairing.pairs, [FilePair(name: "s1", reference: refs.appendingPathComponent("s1_seg-vert_msk.nii.gz").path,
                                                prediction: preds.appendingPathComponent("s1.nii.gz").path)])
        XCTAssertEqual(pairing.unpairedPredictions, [preds.appendingPathComponent("other.mha").path])
        let single = try pairCases(reference: refs.appendingPathComponent("s1_seg-vert_msk.nii.gz").path,
                                   prediction: preds.appendingPathComponent("other.mha").path)
        XCTAssertEqual(single.pairs.map(\.name), ["s1"])
        XCTAssertThrowsError(try pairCases(reference: refs.path, prediction: preds.appendingPathComponent("other.mha").path))
        XCTAssertThrowsError(try pairCases(reference: root.appendingPathComponent("nope").path, prediction: preds.path)) {
            XCTAssertTrue("\($0)".contains("nope: no such file or directory"), "\($0)")
        }
    }

    /// evaluateCases reads each file through the given reader, converts voxels to labels and evaluates.
    func testEvaluateCasesWithInjectedReader() throws {
        let grid = Grid(size: SIMD3(4, 3, 5), spacing: SIMD3(1, 1, 2), origin: .zero,
                        direction: [1, 0, 0, 0, 1, 0, 0, 0, 1])
        var reference = [Float](repeating: 0, count: grid.count), prediction = reference
        for z in 1...3 { for y in 0...1 { for x in 1...2 { reference[x + 4 * (y + 3 * z)] = 20 } } }
        for z in 1...3 { for y in 0...1 { for x in 1...2 { prediction[x + 4 * (y + 3 * z)] = 2 } } }
        prediction[0] = 5
        let volumes = ["r/a_label.mha": Volume(grid: grid, voxels: reference),
                       "p/a.mha": Volume(grid: grid, voxels: prediction)]
        let pairing = FilePairing(pairs: [FilePair(name: "a", reference: "r/a_label.mha", prediction: "p/a.mha")],
                                  unpairedPredictions: [])
        var seen: [String] = []
        let summary = try evaluateCases(pairing, read: { path in
            guard let volume = volumes[path] else { throw EvaluationError("\(path): missing") }
            return volume
        }, progress: { seen.append($0.name) })
        XCTAssertEqual(seen, ["a"])
        XCTAssertEqual(summary.cases[0].vertebrae,
                       [VertebraEvaluation(referenceLabel: 20, predictedLabel: 2, dice: 1, assdMM: 0, complete: true)])
        XCTAssertEqual(summary.cases[0].falsePositives, [5])

        // Another grid that covers the reference's space is resampled onto it (world space) ...
        var coarser = grid
        coarser.spacing = SIMD3(1, 1, 2.5)
        XCTAssertNoThrow(try evaluateCases(pairing, read: { path in
            Volume(grid: path.hasPrefix("p/") ? coarser : grid, voxels: volumes[path]!.voxels)
        }))
        // ... one that lies elsewhere is refused, naming both files.
        var shifted = grid
        shifted.origin = SIMD3(0, 0, 100)
        XCTAssertThrowsError(try evaluateCases(pairing, read: { path in
            Volume(grid: path.hasPrefix("p/") ? shifted : grid, voxels: volumes[path]!.voxels)
        })) { error in
            XCTAssertTrue("\(error)".contains("p/a.mha"), "\(error)")
            XCTAssertTrue("\(error)".contains("r/a_label.mha"), "\(error)")
        }
    }

    func testNonLabelVoxelsAreAnError() {
        let grid = Grid(size: SIMD3(2, 2, 1), spacing: SIMD3(1, 1, 1), origin: .zero, direction: [1, 0, 0, 0, 1, 0, 0, 0, 1])
        for bad: Float in [0.5, -1, .nan, .infinity] {
            XCTAssertThrowsError(try LabelMap(volume: Volume(grid: grid, voxels: [0, 0, 0, bad]), path: "x.nii")) { error in
                XCTAssertTrue("\(error)".hasPrefix("x.nii: voxel (1, 1, 0) holds"), "\(error)")
            }
        }
        var short = Volume(grid: grid, voxels: [0, 0, 0, 0])
        short.voxels = [0, 0]
        XCTAssertThrowsError(try LabelMap(volume: short, path: "y.nii")) {
            XCTAssertTrue("\($0)".hasPrefix("y.nii: 2 voxels"), "\($0)")
        }
        let good = try? LabelMap(volume: Volume(grid: grid, voxels: [0, 3, 24, 0]), path: "z.nii")
        XCTAssertEqual(good?.labels, [0, 3, 24, 0])
    }

    func testAtomicWriteReplacesFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ifcn-eval-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("out.json").path
        try EvaluationReport.writeAtomically(Data("old".utf8), to: path)
        try EvaluationReport.writeAtomically(Data("new".utf8), to: path)
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "new")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["out.json"])
        XCTAssertThrowsError(try EvaluationReport.writeAtomically(Data(), to: dir.appendingPathComponent("no/such/dir.json").path)) {
            XCTAssertTrue("\($0)".contains("no/such/dir.json: cannot write"), "\($0)")
        }
    }
}
