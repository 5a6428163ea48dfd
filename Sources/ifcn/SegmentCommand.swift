import ArgumentParser
import Foundation
import IFCNCompute
import IFCNEngine
import IFCNReport
import IFCNSegmentation
import IFCNSupport
import IFCNVolume

/// `ifcn segment`: iterative instance segmentation of whole scans with a trained checkpoint.
struct SegmentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segment",
        abstract: "Segment the vertebrae of CT scans one by one with a trained checkpoint.",
        discussion: """
            Each scan (a file, or every image file of a directory except label maps named *_label, *_seg, \
            *_seg-vert_msk, *_msk) is resampled to the model's canonical grid, segmented, and its labels 1...K \
            (superior to inferior) written back on the scan's own grid as OUTPUT/<case>.nii.gz, with \
            OUTPUT/<case>.json describing every instance. With several scans, the next scan is read and resampled, \
            and the previous one's outputs written, while the network works on the current one (--overlap off: one \
            at a time). A plain PyTorch export needs --variant, --channels and --patch.
            """)

    @Option(help: "Checkpoint (.safetensors) written by ifcn train, or a plain PyTorch export.")
    var checkpoint: String

    @Option(help: "A scan (.nii, .nii.gz, .mhd, .mha) or a directory of scans.")
    var input: String

    @Option(help: "Output directory (created if needed).")
    var output: String

    @Option(help: "n_min in voxels at the model spacing (default: 1000 mm^3).")
    var minVoxels: Int?

    @Flag(help: "Drop instances whose completeness probability is below 0.5.")
    var dropIncomplete = false

    @Option(help: ArgumentHelp("How labels return to the scan's grid: probability (each instance's probabilities, "
                               + "trilinear; no staircases) or nearest (the working grid's labels)."))
    var labelResampling: LabelResampling = .probability

    @Option(help: ArgumentHelp("Filter before resampling the scan to the model's spacing (default: the one the "
                               + "model's training data was preprocessed with, from the checkpoint; none for older checkpoints)."))
    var downsampling: DownsamplingFilter?

    @Option(name: .customLong("scan-statistics"),
            help: ArgumentHelp("Weight w in 0...1: batch norm normalises with (1 - w) x the model's statistics + w x the scan's own, "
                               + "measured on the grid positions' patches (0: the model's; docs/ACCURACY.md, \"Batch-norm statistics\")."))
    var scanStatistics: Double = 0

    @Flag(help: ArgumentHelp("Print every decision of the instance walk: per grid position and followed fragment, "
                             + "what was accepted or why nothing was (no fragment above n_min, fragment lost, "
                             + "already segmented, bound reached)."))
    var explain = false

    @Option(help: "Compute threads (default: all cores).")
    var threads: Int?

    @Option(help: "Network variant, for plain PyTorch exports or as a check.")
    var variant: Variant?

    @Option(help: "Channels C, for plain PyTorch exports or as a check.")
    var channels: Int?

    @Option(help: "Patch size P, for plain PyTorch exports or as a check.")
    var patch: Int?

    @Option(help: "Voxel spacing (mm) the model works at, for plain PyTorch exports without metadata.")
    var spacing: Double?

    @Flag(help: "Also write OUTPUT/<case>.png: mid-sagittal and mid-coronal slices with the instances overlaid and numbered.")
    var preview = false

    @Option(help: ArgumentHelp("With several scans: scans (the next scan is read and resampled, and the previous one's "
                               + "outputs written, while the network works on the current one) or off (one scan at a time)."))
    var overlap: ScanOverlap = .scans

    @OptionGroup var compute: BackendOptions
    @OptionGroup var reading: ReadingOptions

    func validate() throws {
        if let minVoxels, minVoxels < 1 { throw ValidationError("--min-voxels must be >= 1") }
        guard (0...1).contains(scanStatistics) else { throw ValidationError("--scan-statistics must be in 0...1, got \(scanStatistics)") }
        if let threads, let problem = ThreadCount.problem(threads) { throw ValidationError(problem) }
        if let spacing, let problem = ModelInfo.spacingProblem(spacing, name: "--spacing") { throw ValidationError(problem) }
    }

    func run() throws {
        let loaded = try loadCheckpoint()
        let info = loaded.info
        let network = Network(config: info.config, backend: try compute.make(threads: threads, defaultMath: .tf32),
                              use: .inference)
        Checkpoint.apply(loaded, to: network)
        var options = SegmentationOptions()
        options.dropIncomplete = dropIncomplete
        options.labelResampling = labelResampling
        options.scanStatistics = scanStatistics
        options.downsampling = try downsampling ?? DownsamplingFilter.ofCheckpoint(loaded.metadata, path: checkpoint)
        if let minVoxels { options.minVolumeMM3 = Double(minVoxels) * pow(info.spacingMM, 3) }
        let segmenter = Segmenter(network: network, info: info, options: options)
        if explain { segmenter.explain = { StandardError.write("  explain: " + $0) } }
        StandardError.write("model \(info.config) at \(info.spacingMM) mm (\(options.downsampling.rawValue) downsampling) from \(checkpoint)")

        let scans = try ScanFiles.list(input)
        do {
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        } catch {
            throw CLIError("\(output): cannot create the output directory: \(error.localizedDescription)")
        }
        let start = DispatchTime.now().uptimeNanoseconds
        let overlapped = overlap == .scans && scans.count > 1
        var failures: [Int: String] = [:]
        runStages(count: scans.count, overlapped: overlapped,
                  prepare: { i in prepareScan(scans[i], with: segmenter) },
                  process: { i, read -> SegmentedScan? in
                      StandardError.write("\(tag(i, of: scans)): \(scans[i])")
                      for line in read.lines { StandardError.write(line) }
                      switch read.scan {
                      case .failure(let error):
                          StandardError.write("error: \(error)")
                          failures[i] = "\(error)"
                          return nil
                      case .success(let ready):
                          return runNetwork(ready, with: segmenter)
                      }
                  },
                  finish: { i, segmented in segmented.map { writeOutputs($0, of: scans[i], modelInfo: info) } },
                  report: { i, written in
                      switch written {
                      case nil: break
                      case .success(let line)?: StandardError.write("\(tag(i, of: scans)): " + line)
                      case .failure(let error)?:
                          StandardError.write("\(tag(i, of: scans)): error: \(error)")
                          failures[i] = "\(error)"
                      }
                  })
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        StandardError.write("\(scans.count) scan\(scans.count == 1 ? "" : "s") in " + String(format: "%.1f s", seconds)
                            + (overlapped ? " (scans overlapped)" : ""))
        if !failures.isEmpty {
            throw CLIError("\(failures.count) of \(scans.count) scans failed:\n"
                           + failures.sorted { $0.key < $1.key }.map(\.value).joined(separator: "\n"))
        }
    }

    /// Loads the checkpoint, checking any of --variant/--channels/--patch given against it.
    func loadCheckpoint() throws -> LoadedCheckpoint {
        guard FileManager.default.isReadableFile(atPath: checkpoint) else {
            throw CLIError("\(checkpoint): checkpoint not found or not readable")
        }
        var override: NetworkConfig?
        if let variant, let channels, let patch {
            override = try NetworkConfig(variant: variant, channels: channels, patch: patch)
        }
        let loaded = try Checkpoint.load(path: checkpoint, config: override, spacingMM: spacing)
        let c = loaded.info.config
        if let variant, variant != c.variant {
            throw CLIError("\(checkpoint): checkpoint holds a \(c.variant.rawValue) network, --variant \(variant.rawValue) was given")
        }
        if let channels, channels != c.channels {
            throw CLIError("\(checkpoint): checkpoint holds C=\(c.channels), --channels \(channels) was given")
        }
        if let patch, patch != c.patch {
            throw CLIError("\(checkpoint): checkpoint holds P=\(c.patch), --patch \(patch) was given")
        }
        if let spacing, loaded.metadata["spacing_mm"] != nil, spacing != loaded.info.spacingMM {
            throw CLIError("\(checkpoint): checkpoint works at \(loaded.info.spacingMM) mm, --spacing \(spacing) was given")
        }
        return loaded
    }

    /// Writes JSON atomically (temporary name beside `path`, fsync, rename).
    func writeJSON<T: Encodable>(_ value: T, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(value)
        do {
            try AtomicFile.write(data, to: path)
        } catch let error as FileError {
            throw CLIError(error.description)
        }
    }
}

/// OUTPUT/<case>.json.
struct CaseReport: Encodable {
    var `case`: String
    var input: String
    var labels: String
    var checkpoint: String
    var model: String
    var spacingMM: Double
    var seconds: Double
    var evaluations: Int
    var instances: [InstanceReport]
}
