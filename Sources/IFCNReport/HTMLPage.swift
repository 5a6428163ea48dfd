import Foundation
import IFCNEvaluation

/// Pieces of the self-contained HTML pages: no scripts, no network; images inline (PNG as data URLs, SVG).
enum HTML {
    static func escape(_ text: String) -> String {
        var out = ""
        for ch in text {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(ch)
            }
        }
        return out
    }

    static func page(title: String, body: String) -> String {
        """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <title>\(escape(title))</title>
        <style>
        body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px; color: #1d1d1f; background: #fff; }
        h1 { font-size: 22px; margin: 0 0 12px; }
        h2 { font-size: 18px; margin: 28px 0 10px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
        h3 { font-size: 15px; margin: 18px 0 8px; }
        table { border-collapse: collapse; font-size: 13px; margin: 6px 0 12px; }
        th, td { border: 1px solid #d0d0d0; padding: 3px 8px; text-align: right; }
        th { background: #f2f2f4; }
        td.l, th.l { text-align: left; }
        td:not(.l) { white-space: nowrap; }
        .charts { display: flex; flex-wrap: wrap; gap: 12px; }
        .swatch { display: inline-block; width: 12px; height: 12px; border: 1px solid #555; vertical-align: middle; }
        .note { color: #555; font-size: 13px; }
        img.preview { max-width: 100%; height: auto; display: block; }
        </style>
        </head>
        <body>
        \(body)
        </body>
        </html>

        """
    }

    static func png(_ image: RGBImage, alt: String) throws -> String {
        let data = try PNG.encode(image)
        return "<img class=\"preview\" width=\"\(image.width)\" height=\"\(image.height)\" alt=\"\(escape(alt))\" "
            + "src=\"data:image/png;base64,\(data.base64EncodedString())\">"
    }

    static func format(_ value: Double?, _ digits: Int) -> String {
        value.map { String(format: "%.\(digits)f", $0) } ?? "–"
    }

    /// The per-vertebra table of one case (reference colour swatch, labels, Dice, ASSD, complete) and its means.
    static func caseTable(_ e: CaseEvaluation) -> String {
        var rows = ["<table><tr><th class=\"l\">vertebra</th><th>predicted</th><th>Dice</th><th>ASSD (mm)</th><th>complete</th></tr>"]
        for v in e.vertebrae {
            rows.append("<tr><td class=\"l\"><span class=\"swatch\" style=\"background:\(LabelPalette.css(v.referenceLabel))\"></span> "
                        + "\(v.referenceLabel)</td><td>\(v.predictedLabel.map(String.init) ?? "missed")</td>"
                        + "<td>\(format(v.dice, 3))</td><td>\(format(v.assdMM, 2))</td><td>\(v.complete ? "yes" : "no")</td></tr>")
        }
        rows.append("</table>")
        let fp = e.falsePositives.isEmpty ? "none" : e.falsePositives.map(String.init).joined(separator: ", ")
        rows.append("<p class=\"note\">mean Dice \(format(e.meanDice, 3)) (complete vertebrae \(format(e.meanDiceComplete, 3))), "
                    + "mean ASSD \(format(e.meanASSDmm, 2)) mm; false positives (hatched red in the preview): \(fp)</p>")
        return rows.joined(separator: "\n")
    }

    static let previewNote = "<p class=\"note\">Previews: mid-sagittal (anterior left) and mid-coronal (patient's right on the left) "
        + "slices through the reference's centroid, superior up, CT window -200…1000 HU, square pixels from the voxel spacing. "
        + "A predicted instance takes the colour of the reference vertebra it was matched to.</p>"
}

/// `ifcn evaluate --html`: per case, the vertebra table and the preview of prediction against reference.
public enum EvaluationPage {
    public struct Case {
        public var evaluation: CaseEvaluation
        public var preview: RGBImage?
        /// Why there is no preview, or which CT was used.
        public var note: String
        public init(evaluation: CaseEvaluation, preview: RGBImage?, note: String) {
            self.evaluation = evaluation; self.preview = preview; self.note = note
        }
    }

    public static func html(summary: EvaluationSummary, cases: [Case], title: String = "ifcn evaluation") throws -> String {
        var body = ["<h1>\(HTML.escape(title))</h1>"]
        body.append("<p>\(summary.cases.count) case(s), \(summary.vertebraCount) reference vertebrae (\(summary.missedCount) missed), "
                    + "\(summary.falsePositiveCount) false positive(s); mean Dice \(HTML.format(summary.meanDice, 4)), "
                    + "mean ASSD \(HTML.format(summary.meanASSDmm, 2)) mm.</p>")
        body.append(HTML.previewNote)
        for c in cases {
            body.append("<h2>\(HTML.escape(c.evaluation.name))</h2>")
            body.append(HTML.caseTable(c.evaluation))
            body.append("<p class=\"note\">\(HTML.escape(c.note))</p>")
            if let p = c.preview { body.append(try HTML.png(p, alt: "preview of \(c.evaluation.name)")) }
        }
        return HTML.page(title: title, body: body.joined(separator: "\n"))
    }

    /// Writes the page atomically.
    public static func write(summary: EvaluationSummary, cases: [Case], to path: String) throws {
        try writeFile(Data(try html(summary: summary, cases: cases).utf8), to: path)
    }
}
