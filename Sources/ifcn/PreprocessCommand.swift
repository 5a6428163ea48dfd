import ArgumentParser
import Foundation
import IFCNVolume

/// `ifcn preprocess`: scans + vertebra masks -> canonical isotropic images, labels, weight maps, dataset.json.
struct PreprocessCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preprocess",
        abstract: "Resample labelled CT scans to canonical isotropic grids, compute weight maps, write dataset.json.",
        discussion: """
            Pairs <case>.<ext> with <case>_label.<ext> or <case>_seg.<ext> (CSI), and <case>_ct.<ext> with
            <case>_seg-vert_msk.<ext> (VerSe); ext is .nii, .nii.gz, .mhd or .mha. Writes images/, labels/,
            weights/ (all .nii.gz), the memory-mapped training store store/ and dataset.json into the output folder.
            """)

    @Option(help: "Folder with the scans and label maps.")
    var input: String
    @Option(help: "Output folder.")
    var output: String
    @Option(help: "Isotropic output spacing in mm.")
    var spacing: Double = 1
    @Option(help: "Crop along z: 'mid' keeps the slab between the first and last vertebra centroids, 'none' keeps all.")
    var crop: CropMode = .none
    @Option(help: "Filter before resampling to a coarser spacing: 'gaussian' smooths every scan to the output spacing's resolution (the same noise and detail whatever the scan's own slices), 'none' samples it as it is.")
    var downsampling: DownsamplingFilter = .gaussian
    @Option(help: "Added to stored values to get HU (e.g. -1024 for data stored as HU+1024).")
    var intensityOffset: Double = 0
    @Option(help: "Fraction of cases held out for validation.")
    var valFraction: Double = 0.2
    @Option(help: "Seed of the train/validation split.")
    var seed: UInt64 = 0
    @Option(help: "Comma-separated case names to hold out for validation (instead of the seeded random split).")
    var validation: String?

    @Option(help: "Voxel type of the written images.")
    var imageType: ImageType = .float32

    @OptionGroup var reading: ReadingOptions

    func validate() throws {
        guard spacing.isFinite, spacing > 0 else { throw ValidationError("--spacing must be positive") }
        guard valFraction >= 0, valFraction < 1 else { throw ValidationError("--val-fraction must be in [0, 1)") }
    }

    func run() throws {
        var options = PreprocessOptions()
        options.spacing = spacing
        options.crop = crop
        options.downsampling = downsampling
        options.intensityOffset = intensityOffset
        options.validationFraction = valFraction
        options.seed = seed
        options.validationCases = validation.map { $0.split(separator: ",").map { String($0) } } ?? []
        options.imageType = imageType.voxelType
        options.reading = reading.volumeReadOptions
        let start = Date()
        // Errors (VolumeError names the file and the problem) propagate: ArgumentParser prints them, exit 1.
        let manifest = try Preprocessor.run(input: input, output: output, options: options) { line in
            print(line)
            fflush(nil)
        }
        let nVal = manifest.cases(in: .validation).count
        print(String(format: "preprocessed %d cases (%d train, %d validation) in %.1f s -> %@",
                     manifest.cases.count, manifest.cases.count - nVal, nVal, Date().timeIntervalSince(start),
                     output + "/" + DatasetManifest.fileName))
        manifest.fieldOfViewNotes.forEach { print($0) }
    }
}
