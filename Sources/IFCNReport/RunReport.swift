import Foundation
import IFCNEvaluation
import IFCNTraining
import IFCNVolume

/// RUN/run.json: how a run was started, for its report (written by `ifcn train` on rank 0).
public struct RunInfo: Codable, Sendable {
    public var model: String
    public var data: String
    public var hardware: String
    public var ranks: Int
    public var iterations: Int
    public var iterationsPerEpoch: Int
    public var learningRate: Double
    public var learningRateSteps: [Int]
    public var seed: UInt64
    public var augmentations: [String]

    public init(options o: TrainingOptions, hardware: String, ranks: Int) {
        model = "\(o.variant.rawValue) C=\(o.channels) P=\(o.patch)"
        data = o.dataDir
        self.hardware = hardware
        self.ranks = ranks
        iterations = o.iterations
        iterationsPerEpoch = o.iterationsPerEpoch
        learningRate = Double(o.learningRate)
        learningRateSteps = o.learningRateSteps
        seed = o.seed
        augmentations = o.augmentations.map { "\($0)" }.sorted()
    }

    enum CodingKeys: String, CodingKey {
        case model, data, hardware, ranks, iterations, iterationsPerEpoch = "iterations_per_epoch"
        case learningRate = "learning_rate", learningRateSteps = "learning_rate_steps", seed, augmentations
    }

    static func path(_ run: RunDirectory) -> String { run.path + "/run.json" }
}

/// A run folder as the report reads it.
struct RunRecord {
    var run: RunDirectory
    var name: String
    var info: RunInfo?
    var metrics: [EpochMetrics]
    var validation: [ValidationRecord]

    /// Reads RUN/metrics.jsonl (required; a resumed run's repeated epochs keep their last line), RUN/run.json
    /// and RUN/validation/best/*.json (both optional).
    static func load(_ path: String) throws -> RunRecord {
        let run = RunDirectory(path: path)
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue else {
            throw ReportError("\(path): no such run folder")
        }
        guard let data = fm.contents(atPath: run.metrics) else {
            throw ReportError("\(run.metrics): not found: not a training run folder, or no epoch has finished yet")
        }
        let decoder = JSONDecoder()
        var byEpoch: [Int: EpochMetrics] = [:]
        for (n, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let text = line.trimmingCharacters(in: .whitespaces)
            guard !text.isEmpty else { continue }
            do {
                let m = try decoder.decode(EpochMetrics.self, from: Data(text.utf8))
                byEpoch[m.epoch] = m
            } catch {
                throw ReportError("\(run.metrics): line \(n + 1) is not an epoch record (\(error))")
            }
        }
        let info = fm.contents(atPath: RunInfo.path(run)).flatMap { try? decoder.decode(RunInfo.self, from: $0) }
        var validation: [ValidationRecord] = []
        for name in ((try? fm.contentsOfDirectory(atPath: run.validationBest)) ?? []).sorted() where name.hasSuffix(".json") {
            let file = run.validationBest + "/" + name
            guard let d = fm.contents(atPath: file) else { continue }
            do { validation.append(try decoder.decode(ValidationRecord.self, from: d)) } catch {
                throw ReportError("\(file): not a validation record (\(error))")
            }
        }
        let name = URL(fileURLWithPath: path).standardizedFileURL.lastPathComponent
        return RunRecord(run: run, name: name, info: info, metrics: byEpoch.keys.sorted().map { byEpoch[$0]! },
                         validation: validation)
    }

    /// The epoch with the highest validation Dice (the one `best.safetensors` holds).
    var bestEpoch: EpochMetrics? { metrics.filter { $0.valDice != nil }.max { $0.valDice! < $1.valDice! } }

    /// Iterations after which the learning rate dropped: from run.json, else where the logged rate changes.
    var learningRateSteps: [Int] {
        if let steps = info?.learningRateSteps { return steps.filter { $0 < (metrics.last?.iteration ?? 0) } }
        return zip(metrics, metrics.dropFirst()).filter { $0.learningRate != $1.learningRate }.map { $0.0.iteration }
    }
}

/// `ifcn report`: one self-contained HTML page (inline SVG charts, PNG previews as data URLs, no scripts) with
/// each run's summary, its curves per epoch (several runs overlaid), and the best epoch's validation cases.
public enum RunReport {
    static let runColors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]

    /// Writes the report of `runs` (run folders) to `output`.
    public static func write(runs: [String], to output: String) throws {
        let records = try runs.map(RunRecord.load)
        try writeFile(Data(try html(records).utf8), to: output)
    }

    /// `ifcn train`, rank 0, after each epoch: RUN/run.json (the options of the latest start, so a resumed run
    /// shows how it goes on), then RUN/report.html.
    public static func epochEnded(_ end: EpochEnd, options: TrainingOptions) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeFile(try encoder.encode(RunInfo(options: options, hardware: end.hardware, ranks: end.ranks)),
                      to: RunInfo.path(end.run))
        try write(runs: [end.run.path], to: end.run.report)
    }

    static func html(_ runs: [RunRecord]) throws -> String {
        let title = "ifcn report: " + runs.map(\.name).joined(separator: ", ")
        var body = ["<h1>\(HTML.escape(title))</h1>", summaryTable(runs), "<h2>Curves per epoch</h2>"]
        if runs.count > 1 { body.append("<p class=\"note\">Runs overlaid; dashed lines: learning-rate steps (x0.1).</p>") }
        else { body.append("<p class=\"note\">Dashed lines: learning-rate steps (x0.1). Hover a point for its values.</p>") }
        body.append("<div class=\"charts\">" + charts(runs).joined(separator: "\n") + "</div>")
        for (i, r) in runs.enumerated() {
            body.append(try validationSection(r, heading: runs.count > 1 ? "Validation at the best epoch: run \(i + 1) (\(r.name))"
                                                                          : "Validation at the best epoch"))
        }
        body.append("<p class=\"note\">Written \(ISO8601DateFormatter().string(from: Date())) by ifcn report.</p>")
        return HTML.page(title: title, body: body.joined(separator: "\n"))
    }

    static func summaryTable(_ runs: [RunRecord]) -> String {
        var rows = ["<table>", "<tr><th class=\"l\">run</th><th class=\"l\">model</th><th class=\"l\">data</th><th class=\"l\">ranks x threads/GPU</th>"
                    + "<th>iterations</th><th>epochs</th><th>time</th><th>samples/s</th><th>best epoch</th><th>best val Dice</th>"
                    + "<th>ASSD (mm)</th><th class=\"l\">best checkpoint</th></tr>"]
        for (i, r) in runs.enumerated() {
            let last = r.metrics.last
            let planned = r.info.map { " / \($0.iterations)" } ?? ""
            let seconds = r.metrics.reduce(0) { $0 + $1.seconds + $1.validationSeconds }
            let samples = r.metrics.reduce(0) { $0 + $1.samplesPerSecond * $1.seconds }
            let rate = samples / max(r.metrics.reduce(0) { $0 + $1.seconds }, 1e-9)
            let best = r.bestEpoch
            let checkpoint = FileManager.default.fileExists(atPath: r.run.best) ? r.run.best : "–"
            let swatch = runs.count > 1 ? "<span class=\"swatch\" style=\"background:\(runColors[i % runColors.count])\"></span> " : ""
            rows.append("<tr><td class=\"l\">\(swatch)\(HTML.escape(r.run.path))</td><td class=\"l\">\(HTML.escape(r.info?.model ?? "–"))</td>"
                        + "<td class=\"l\">\(HTML.escape(r.info?.data ?? "–"))</td>"
                        + "<td class=\"l\">\(HTML.escape(r.info?.hardware ?? last.map { "\($0.ranks) rank(s)" } ?? "–"))</td>"
                        + "<td>\(last.map { String($0.iteration) } ?? "0")\(planned)</td><td>\(r.metrics.count)</td>"
                        + "<td>\(duration(seconds))</td><td>\(String(format: "%.2f", rate))</td>"
                        + "<td>\(best.map { "\($0.epoch) (iter \($0.iteration))" } ?? "–")</td>"
                        + "<td>\(HTML.format(best?.valDice, 4))</td><td>\(HTML.format(best?.valASSDmm, 2))</td>"
                        + "<td class=\"l\">\(HTML.escape(checkpoint))</td></tr>")
        }
        rows.append("</table>")
        rows.append("<p class=\"note\">time: training and validation of the epochs logged; samples/s: all ranks together, "
                    + "training only.</p>")
        return rows.joined(separator: "\n")
    }

    static func duration(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%d h %02d min", t / 3600, (t % 3600) / 60)
            : t >= 60 ? String(format: "%d min %02d s", t / 60, t % 60) : "\(t) s"
    }

    static func charts(_ runs: [RunRecord]) -> [String] {
        let markers: [(x: Double, label: String)] = Array(Set(runs.flatMap(\.learningRateSteps))).sorted()
            .map { (Double($0), "lr x0.1") }
        func chart(_ title: String, _ y: String, range: ClosedRange<Double>? = nil, _ value: (EpochMetrics) -> Double?) -> String {
            let series = runs.enumerated().map { i, r in
                ChartSeries(name: r.name, color: runColors[i % runColors.count],
                            points: r.metrics.map { (Double($0.iteration), value($0)) })
            }
            return LineChart(title: title, xLabel: "iteration", yLabel: y, series: series, markers: markers, yRange: range).svg()
        }
        return [
            chart("Training loss", "loss") { $0.trainLoss },
            chart("Training Dice (patches)", "Dice", range: 0...1) { $0.trainDice },
            chart("Validation Dice", "Dice", range: 0...1) { $0.valDice },
            chart("Validation ASSD", "mm") { $0.valASSDmm },
            chart("Throughput", "samples / s") { $0.samplesPerSecond },
            chart("Allreduce share", "% of step time", range: 0...100) { 100 * $0.allreduceShare },
        ]
    }

    static func validationSection(_ r: RunRecord, heading: String) throws -> String {
        var out = ["<h2>\(HTML.escape(heading))</h2>"]
        guard !r.validation.isEmpty else {
            out.append("<p class=\"note\">No validation cases recorded in \(HTML.escape(r.run.validationBest)) "
                       + "(a run without validation cases, or one trained before ifcn kept them).</p>")
            return out.joined(separator: "\n")
        }
        if let best = r.bestEpoch {
            out.append("<p>Epoch \(best.epoch), iteration \(best.iteration): validation Dice \(HTML.format(best.valDice, 4)), "
                       + "ASSD \(HTML.format(best.valASSDmm, 2)) mm over all validation vertebrae.</p>")
        }
        out.append(HTML.previewNote)
        for v in r.validation {
            out.append("<h3>\(HTML.escape(v.evaluation.name))</h3>")
            out.append(HTML.caseTable(v.evaluation))
            do {
                let image = FileManager.default.isReadableFile(atPath: v.image) ? v.image : nil
                let preview = try CasePreview.comparison(imagePath: image, referencePath: v.reference, predictionPath: v.prediction,
                                                         evaluation: v.evaluation)
                if image == nil { out.append("<p class=\"note\">CT \(HTML.escape(v.image)) not found: labels on black.</p>") }
                out.append(try HTML.png(preview, alt: "validation preview of \(v.evaluation.name)"))
            } catch {
                out.append("<p class=\"note\">No preview: \(HTML.escape("\(error)"))</p>")
            }
        }
        return out.joined(separator: "\n")
    }
}
