import ArgumentParser
import Foundation
import IFCNEvaluation
import IFCNReport
import IFCNSupport
import IFCNVolume

/// `ifcn evaluate`: per-vertebra Dice, ASSD and completeness of predicted instance segmentations.
struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Compare predicted vertebra segmentations with reference label maps (Dice, ASSD, false positives).",
        discussion: """
            Give two files, or two directories whose files are paired by case name (extension and a suffix \
            _label, _seg, _seg-vert_msk or _ct removed). Reference vertebrae are matched one-to-one to predicted \
            instances by largest overlap; a missed vertebra scores Dice 0. A vertebra is complete when it does not \
            touch the first or last slice along the spine axis.
            """)

    @Option(help: "Reference label map, or a directory of them (.nii, .nii.gz, .mhd, .mha).")
    var reference: String

    @Option(help: "Predicted label map, or a directory of them.")
    var prediction: String

    @Option(help: "Write the results as JSON to this file.")
    var json: String?

    @Option(help: "Write one CSV row per reference vertebra to this file.")
    var csv: String?

    @OptionGroup var reading: ReadingOptions

    @Option(help: "Write an HTML page with every case's table and previews of prediction against reference to this file.")
    var html: String?

    @Option(help: "CT scan, or a directory of scans paired by case name, under the --html previews (default: the input recorded by ifcn segment beside the prediction, else <case>_ct or <case> beside the reference).")
    var image: String?

    func run() throws {
        // Errors (EvaluationError, VolumeError) name the file and the problem; ArgumentParser prints them.
        let pairing = try pairCases(reference: reference, prediction: prediction)
        for file in pairing.unpairedPredictions {
            StandardError.write("warning: \(file): no reference for this case, ignored")
        }
        let options = reading.volumeReadOptions
        let summary = try evaluateCases(pairing, read: { try VolumeIO.read($0, options: options) },
                                        progress: { result in print(EvaluationReport.table(result)) })
        print(EvaluationReport.summaryText(summary))
        if let json {
            try EvaluationReport.writeAtomically(EvaluationReport.json(summary), to: json)
        }
        if let csv {
            try EvaluationReport.writeAtomically(Data(EvaluationReport.csv(summary).utf8), to: csv)
        }
        if let html {
            try writeHTML(summary: summary, pairing: pairing, to: html)
            print("html: \(html)")
        }
    }
}
