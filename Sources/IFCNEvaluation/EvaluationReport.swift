import Foundation
import IFCNSupport

/// Text, JSON and CSV renderings of evaluation results.
public enum EvaluationReport {
    /// The JSON report: `{"cases": [...], "mean_dice": ..., "mean_assd_mm": ..., ...}`, missing values as null.
    public static func json(_ summary: EvaluationSummary) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(summary)
    }

    /// Header of the CSV report.
    public static let csvHeader = "case,reference_label,predicted_label,dice,assd_mm,complete"

    /// One CSV row per reference vertebra; missing values are empty cells.
    public static func csv(_ summary: EvaluationSummary) -> String {
        var lines = [csvHeader]
        for result in summary.cases {
            for v in result.vertebrae {
                let fields = [csvField(result.name), String(v.referenceLabel), v.predictedLabel.map(String.init) ?? "",
                              String(v.dice), v.assdMM.map { String($0) } ?? "", String(v.complete)]
                lines.append(fields.joined(separator: ","))
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Quotes a CSV field when it holds a comma, quote or line break.
    static func csvField(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// A human-readable table of one case.
    public static func table(_ result: CaseEvaluation) -> String {
        var lines = ["case \(result.name)",
                     "  reference  predicted    dice  assd_mm  complete"]
        for v in result.vertebrae {
            lines.append("  " + pad(String(v.referenceLabel), 9) + "  " + pad(v.predictedLabel.map(String.init) ?? "-", 9)
                         + "  " + pad(format(v.dice, 4), 6) + "  " + pad(v.assdMM.map { format($0, 3) } ?? "-", 7)
                         + "  " + pad(v.complete ? "yes" : "no", 8))
        }
        let falsePositives = result.falsePositives.isEmpty ? "none" : result.falsePositives.map(String.init).joined(separator: " ")
        lines.append("  false positives: \(falsePositives)")
        lines.append("  mean dice \(formatMean(result.meanDice, 4)) (complete \(formatMean(result.meanDiceComplete, 4))), "
                     + "mean assd \(formatMean(result.meanASSDmm, 3)) mm (complete \(formatMean(result.meanASSDmmComplete, 3)) mm)")
        return lines.joined(separator: "\n")
    }

    /// Overall means as text.
    public static func summaryText(_ summary: EvaluationSummary) -> String {
        let complete = summary.cases.flatMap(\.vertebrae).filter(\.complete).count
        return """
            overall: \(summary.cases.count) cases, \(summary.vertebraCount) vertebrae (\(summary.missedCount) missed), \
            \(summary.falsePositiveCount) false positives
              all vertebrae:     mean dice \(formatMean(summary.meanDice, 4)), mean assd \(formatMean(summary.meanASSDmm, 3)) mm
              complete (\(complete)):  mean dice \(formatMean(summary.meanDiceComplete, 4)), \
            mean assd \(formatMean(summary.meanASSDmmComplete, 3)) mm
            """
    }

    private static func format(_ value: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", value) }
    private static func formatMean(_ value: Double?, _ digits: Int) -> String { value.map { format($0, digits) } ?? "-" }
    private static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
    }

    /// Writes `data` to a temporary file in the destination's folder, flushes it and renames it to `path`.
    public static func writeAtomically(_ data: Data, to path: String) throws {
        do {
            try AtomicFile.write(data, to: path)
        } catch let error as FileError {
            throw EvaluationError(error.description)
        }
    }
}
