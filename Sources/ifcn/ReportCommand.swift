import ArgumentParser
import Foundation
import IFCNReport
import IFCNSupport

/// `ifcn report`: one self-contained HTML page of one or more training runs.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write an HTML report of training runs: summary, curves per epoch, the best epoch's validation previews.",
        discussion: """
            One file with everything inline (SVG charts, PNG previews; no scripts, nothing from the network): each run's \
            model, data, ranks, iterations, time and best checkpoint; training loss and Dice, validation Dice and ASSD, \
            samples/s and allreduce share per epoch, learning-rate steps marked (several runs overlaid); and for every \
            validation case of the best epoch its vertebra table and mid-sagittal / mid-coronal previews of the \
            prediction beside the reference. ifcn train keeps RUN/report.html current after every epoch.
            """)

    @Argument(help: "Run folders (ifcn train --output); several are overlaid for comparison.")
    var runs: [String]

    @Option(help: "HTML file to write (default: RUN/report.html of the first run).")
    var output: String?

    func validate() throws {
        if runs.isEmpty { throw ValidationError("give at least one run folder") }
    }

    func run() throws {
        let path = output ?? (runs[0] as NSString).appendingPathComponent("report.html")
        do {
            try RunReport.write(runs: runs, to: path)
        } catch let error as ReportError {
            throw CLIError(error.description)
        }
        print("report: \(path)")
    }
}
