import Foundation
import IFCNEvaluation
import IFCNReport
import IFCNVolume

extension EvaluateCommand {
    /// `--html`: the per-case tables with previews, the CT found per case (`--image`, else beside the files).
    func writeHTML(summary: EvaluationSummary, pairing: FilePairing, to path: String) throws {
        var cases: [EvaluationPage.Case] = []
        for (pair, evaluation) in zip(pairing.pairs, summary.cases) {
            let ct = try imagePath(for: pair)
            do {
                let preview = try CasePreview.comparison(imagePath: ct, referencePath: pair.reference,
                                                         predictionPath: pair.prediction, evaluation: evaluation)
                cases.append(.init(evaluation: evaluation, preview: preview,
                                   note: ct.map { "CT: \($0)" } ?? "no CT found for this case (give --image): labels on black"))
            } catch {
                throw CLIError("--html: preview of case \(pair.name): \(error)")
            }
        }
        do {
            try EvaluationPage.write(summary: summary, cases: cases, to: path)
        } catch let error as ReportError {
            throw CLIError(error.description)
        }
    }

    func imagePath(for pair: FilePair) throws -> String? {
        guard let image else {
            return CasePreview.findImage(caseName: pair.name, referencePath: pair.reference, predictionPath: pair.prediction)
        }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: image, isDirectory: &isDir) else {
            throw CLIError("\(image): --image not found")
        }
        guard isDir.boolValue else { return image }
        let files = (try? FileManager.default.contentsOfDirectory(atPath: image)) ?? []
        let match = files.sorted().first { CaseNaming.caseName(forFile: $0) == pair.name && !$0.contains("_seg") && !$0.contains("_label") }
        guard let match else { throw CLIError("\(image): no scan of case \(pair.name) in --image") }
        return (image as NSString).appendingPathComponent(match)
    }
}
