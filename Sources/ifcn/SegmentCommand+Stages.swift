import Foundation
import IFCNEngine
import IFCNReport
import IFCNSegmentation
import IFCNSupport
import IFCNVolume

/// The three steps of `ifcn segment` for one scan, which `runStages` overlaps across the scans of a folder
/// (`--overlap scans`): reading and preparing (no network; on a background thread), the network (on the main
/// thread), and writing the outputs (on a background thread). The background steps print nothing themselves:
/// their lines come back as values and the main thread prints them under the scan's `[i/N] case` tag.
extension SegmentCommand {
    /// A scan read and made ready for the network.
    struct ReadyScan {
        var prepared: PreparedScan
        /// The scan itself, kept only for --preview (else dropped once prepared, to bound memory).
        var image: Volume?
    }

    /// What reading and preparing a scan gave: the lines the preparation printed, and the scan or the error.
    struct ReadOutcome {
        var lines: [String]
        var scan: Result<ReadyScan, Error>
    }

    /// A segmented scan and what writing its outputs needs.
    struct SegmentedScan {
        var result: SegmentationResult
        var image: Volume?
    }

    /// "[2/3] sub-verse008": the tag of scan `i` of `scans` in the log.
    func tag(_ i: Int, of scans: [String]) -> String {
        "[\(i + 1)/\(scans.count)] \(ScanFiles.caseName(scans[i]))"
    }

    /// Step 1: reads the scan at `path` and resamples it to the model's grid (`Segmenter.prepare`). Reads only
    /// `segmenter.info` and `.options`, so it may run next to the network's step on another scan.
    func prepareScan(_ path: String, with segmenter: Segmenter) -> ReadOutcome {
        var lines: [String] = []
        let scan = Result { () throws -> ReadyScan in
            let image = try VolumeIO.readScan(path, options: reading.volumeReadOptions)
            do {
                let prepared = try segmenter.prepare(image) { lines.append("  " + $0) }
                return ReadyScan(prepared: prepared, image: preview ? image : nil)
            } catch let error as TooLarge {
                throw VolumeError(path: path, message: "cannot segment at the model's \(segmenter.info.spacingMM) mm: "
                                  + error.message)
            }
        }
        return ReadOutcome(lines: lines, scan: scan)
    }

    /// Step 2: the network's walk over a prepared scan, its progress lines printed as they come.
    func runNetwork(_ scan: ReadyScan, with segmenter: Segmenter) -> SegmentedScan {
        SegmentedScan(result: segmenter.segment(scan.prepared) { StandardError.write("  " + $0) }, image: scan.image)
    }

    /// Step 3: writes OUTPUT/<case>.nii.gz, OUTPUT/<case>.json and with --preview OUTPUT/<case>.png for the scan
    /// at `path`; returns the line that says so.
    func writeOutputs(_ scan: SegmentedScan, of path: String, modelInfo info: ModelInfo) -> Result<String, Error> {
        Result {
            let name = ScanFiles.caseName(path), result = scan.result
            let labelPath = output + "/" + name + ".nii.gz"
            let type: VoxelType = result.instances.count <= 255 ? .uint8 : .int16
            try VolumeIO.write(result.labels, to: labelPath, as: type)
            let report = CaseReport(case: name, input: path, labels: labelPath, checkpoint: checkpoint,
                                    model: info.config.description, spacingMM: info.spacingMM,
                                    seconds: result.seconds, evaluations: result.evaluations,
                                    instances: result.instances)
            try writeJSON(report, to: output + "/" + name + ".json")
            if let image = scan.image {
                try PNG.write(CasePreview.segmentation(image: image, labels: result.labels), to: output + "/" + name + ".png")
            }
            return "wrote \(labelPath): \(result.instances.count) instances, \(result.evaluations) evaluations, "
                + String(format: "%.1f s", result.seconds)
        }
    }
}
