import Foundation
import IFCNSupport

/// A CT scan and its vertebra label map found in an input folder.
public struct CasePair: Sendable, Equatable {
    public var name: String
    public var image: String
    public var label: String
}

/// Options of `ifcn preprocess`.
public struct PreprocessOptions: Sendable {
    /// Isotropic output spacing (mm).
    public var spacing: Double = 1
    /// Crop along z: the slab between the centroid planes of the first and last vertebra, or nothing.
    public var crop: CropMode = .none
    /// Filter of the image before it is resampled to `spacing`.
    public var downsampling: DownsamplingFilter = .gaussian
    /// HU = stored value + intensityOffset.
    public var intensityOffset: Double = 0
    public var validationFraction: Double = 0.2
    /// Cases held out for validation by name (replaces the seeded random split when not empty).
    public var validationCases: [String] = []
    public var seed: UInt64 = 0
    /// Voxel type of the written images (float32 or int16).
    public var imageType: VoxelType = .float32
    /// How the input files are read (MetaImage data files outside the input folder).
    public var reading = VolumeReadOptions()
    public init() {}
}

/// Preprocessing of a folder of labelled scans into a training data set (docs/METHOD.md, "Preprocessing").
public enum Preprocessor {
    static let labelSuffixes = ["_seg-vert_msk", "_label", "_seg"]

    /// Pairs `<case>.<ext>` with `<case>_label.<ext>` / `<case>_seg.<ext>`, and VerSe `<case>_ct.<ext>` with
    /// `<case>_seg-vert_msk.<ext>`. A label without its image is an error; images without labels are ignored.
    public static func findPairs(in dir: String) throws -> [CasePair] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        } catch {
            throw VolumeError(path: dir, message: "cannot list the input folder")
        }
        var images: [String: String] = [:]  // stem -> file name
        var labels: [(base: String, file: String)] = []
        for name in names where !name.hasPrefix(".") {
            guard let (stem, _) = VolumeIO.splitExtension(name) else { continue }
            if let suffix = labelSuffixes.first(where: { stem.hasSuffix($0) && stem.count > $0.count }) {
                labels.append((String(stem.dropLast(suffix.count)), name))
            } else {
                if let other = images[stem] {
                    throw VolumeError(path: dir + "/" + name, message: "two images for case '\(stem)' (also \(other))")
                }
                images[stem] = name
            }
        }
        var pairs: [CasePair] = []
        var seen = Set<String>()
        for (base, file) in labels {
            let imageName = images[base] ?? images[base + "_ct"]
            guard let imageName else {
                throw VolumeError(path: dir + "/" + file, message: "label map without its image (expected \(base).<ext> or \(base)_ct.<ext>)")
            }
            guard seen.insert(base).inserted else {
                throw VolumeError(path: dir + "/" + file, message: "case '\(base)' has more than one label map")
            }
            pairs.append(CasePair(name: base, image: dir + "/" + imageName, label: dir + "/" + file))
        }
        return pairs.sorted { $0.name < $1.name }
    }

    /// Deterministic train/validation split: seeded shuffle of the sorted names; at least one validation case
    /// when there are two or more cases and the fraction is positive; never all cases.
    public static func split(names: [String], fraction: Double, seed: UInt64) -> [String: DatasetSplit] {
        let sorted = names.sorted()
        var rng = SplitMix64(seed: seed)
        var order = sorted
        if order.count > 1 {
            for i in stride(from: order.count - 1, to: 0, by: -1) {
                let j = Int(rng.next() % UInt64(i + 1))
                order.swapAt(i, j)
            }
        }
        var nVal = Int((Double(order.count) * fraction).rounded())
        if fraction > 0, order.count >= 2 { nVal = max(nVal, 1) }
        nVal = min(nVal, max(order.count - 1, 0))
        var result: [String: DatasetSplit] = [:]
        for (i, name) in order.enumerated() { result[name] = i < nVal ? .validation : .train }
        return result
    }

    /// Result of preprocessing one case (before writing).
    public struct Processed: Sendable {
        public var image: Volume
        public var labels: LabelVolume
        public var weights: Volume
        public var vertebrae: [VertebraInfo]
        public var cropZ: [Int]?
        /// Seconds spent reading, resampling and computing weights.
        public var seconds: (read: Double, resample: Double, weights: Double) = (0, 0, 0)
    }

    /// Reads, checks, resamples, optionally crops and weights one case.
    public static func process(_ pair: CasePair, options: PreprocessOptions) throws -> Processed {
        let t0 = Date()
        // Headers first: a label map on another grid is refused before either file's voxels are read.
        let imageGrid = try VolumeIO.readGrid(pair.image, options: options.reading)
        let labelGrid = try VolumeIO.readGrid(pair.label, options: options.reading)
        guard imageGrid.isClose(to: labelGrid) else {
            throw VolumeError(path: pair.label, message: "label map grid (\(labelGrid.summary)) differs from the image \(pair.image) (\(imageGrid.summary))")
        }
        let target: Grid
        do {
            target = try canonicalGrid(covering: imageGrid, spacing: options.spacing)
        } catch let error as TooLarge {
            throw VolumeError(path: pair.image, message: "cannot resample to \(options.spacing) mm: \(error.message)")
        }
        var image = try VolumeIO.readScan(pair.image, options: options.reading)
        let labelFile = try VolumeIO.read(pair.label, options: options.reading)
        let labels = try LabelVolume(labelFile, path: pair.label)
        guard labels.voxels.contains(where: { $0 > 0 }) else {
            throw VolumeError(path: pair.label, message: "label map holds no vertebrae (all zero)")
        }
        if options.intensityOffset != 0 {
            let offset = Float(options.intensityOffset)
            for i in image.voxels.indices { image.voxels[i] += offset }
        }
        let t1 = Date()
        var outImage = resample(image, onto: target, interpolation: .linear, fill: -1000,
                                filter: options.downsampling)
        var outLabels = resample(labels, onto: target)
        var vertebrae = VertebraInfo.collect(from: outLabels)
        guard !vertebrae.isEmpty else {
            throw VolumeError(path: pair.label, message: "no vertebra survives resampling to \(options.spacing) mm")
        }
        var cropZ: [Int]?
        if options.crop == .mid {
            let zs = vertebrae.map { $0.centroidIndex.z }
            let lo = max(0, Int(zs.min()!.rounded(.down)))
            let hi = min(target.size.z - 1, Int(zs.max()!.rounded(.up)))
            if hi >= lo {
                outImage = cropSlices(outImage, lo, hi)
                outLabels = cropSlices(outLabels, lo, hi)
                cropZ = [lo, hi]
                vertebrae = VertebraInfo.collect(from: outLabels)
                guard !vertebrae.isEmpty else {
                    throw VolumeError(path: pair.label, message: "no vertebra left after the mid crop")
                }
            }
        }
        let t2 = Date()
        let weights = distanceWeights(labels: outLabels)
        var result = Processed(image: outImage, labels: outLabels, weights: weights, vertebrae: vertebrae, cropZ: cropZ)
        result.seconds = (t1.timeIntervalSince(t0), t2.timeIntervalSince(t1), Date().timeIntervalSince(t2))
        return result
    }

    /// Slices lo...hi of `v` along z (grid origin moved accordingly).
    public static func cropSlices(_ v: Volume, _ lo: Int, _ hi: Int) -> Volume {
        let (grid, range) = cropSlices(v.grid, lo, hi)
        return Volume(grid: grid, voxels: Array(v.voxels[range]))
    }

    /// Slices lo...hi of a label map along z (grid origin moved accordingly).
    public static func cropSlices(_ v: LabelVolume, _ lo: Int, _ hi: Int) -> LabelVolume {
        let (grid, range) = cropSlices(v.grid, lo, hi)
        return LabelVolume(grid: grid, voxels: Array(v.voxels[range]))
    }

    /// The grid of slices lo...hi along z, and their linear voxel range in `grid`.
    static func cropSlices(_ grid: Grid, _ lo: Int, _ hi: Int) -> (Grid, Range<Int>) {
        var cropped = grid
        cropped.origin = grid.world(SIMD3(0, 0, Double(lo)))
        cropped.size.z = hi - lo + 1
        let slice = grid.size.x * grid.size.y
        return (cropped, (lo * slice)..<((hi + 1) * slice))
    }

    /// Preprocesses every case of `input` into `output` (images/, labels/, weights/, the training store
    /// store/, dataset.json).
    /// Cases run in parallel; everything is staged in a hidden folder and moved into place only when all
    /// cases succeed, so a failure leaves nothing half-written. `progress` receives one line per case.
    @discardableResult
    public static func run(input: String, output: String, options: PreprocessOptions,
                           progress: @escaping @Sendable (String) -> Void = { _ in }) throws -> DatasetManifest {
        guard options.spacing.isFinite, options.spacing > 0 else {
            throw VolumeError(path: input, message: "spacing must be positive")
        }
        guard options.validationFraction >= 0, options.validationFraction < 1 else {
            throw VolumeError(path: input, message: "validation fraction must be in [0, 1)")
        }
        let pairs = try findPairs(in: input)
        guard !pairs.isEmpty else {
            throw VolumeError(path: input, message: "no image/label pairs found (expected <case>.nii.gz + <case>_label.nii.gz, _seg, or VerSe _ct + _seg-vert_msk)")
        }
        let fm = FileManager.default
        try? fm.createDirectory(atPath: output, withIntermediateDirectories: true)
        let staging = output + "/.ifcn-preprocess-\(getpid())-\(UUID().uuidString.prefix(6))"
        for sub in ["images", "labels", "weights", CaseStore.folder] {
            do {
                try fm.createDirectory(atPath: staging + "/" + sub, withIntermediateDirectories: true)
            } catch {
                throw VolumeError(path: output, message: "cannot create output folder: \(error.localizedDescription)")
            }
        }
        defer { try? fm.removeItem(atPath: staging) }

        var splits = split(names: pairs.map(\.name), fraction: options.validationFraction, seed: options.seed)
        if !options.validationCases.isEmpty {
            let names = Set(pairs.map(\.name))
            for n in options.validationCases where !names.contains(n) {
                throw VolumeError(path: input, message: "validation case '\(n)' not found (cases: \(names.sorted().joined(separator: ", ")))")
            }
            for n in names { splits[n] = options.validationCases.contains(n) ? .validation : .train }
        }
        let results = ResultBox<CaseEntry>(count: pairs.count)
        let start = Date()
        parallelFor(parts: pairs.count) { i in
            let pair = pairs[i]
            let t0 = Date()
            do {
                let p = try process(pair, options: options)
                let tWrite = Date()
                let file = pair.name + ".nii.gz"
                try VolumeIO.write(p.image, to: staging + "/images/" + file, as: options.imageType)
                try VolumeIO.write(p.labels, to: staging + "/labels/" + file, as: p.labels.fileType)
                try VolumeIO.write(p.weights, to: staging + "/weights/" + file, as: .float32)
                let storeFile = CaseStore.folder + "/" + pair.name + CaseStore.fileExtension
                let store = try CaseStore.write(image: p.image, labels: p.labels, weights: p.weights, imageType: options.imageType,
                                                to: staging + "/" + storeFile, relativePath: storeFile)
                let entry = CaseEntry(name: pair.name, image: "images/" + file, label: "labels/" + file,
                                      weight: "weights/" + file, split: splits[pair.name] ?? .train,
                                      grid: p.image.grid, vertebrae: p.vertebrae,
                                      sourceImage: URL(fileURLWithPath: pair.image).lastPathComponent,
                                      sourceLabel: URL(fileURLWithPath: pair.label).lastPathComponent, cropZ: p.cropZ,
                                      store: store)
                let done = results.set(i, .success(entry))
                progress(String(format: "case %d/%d %@: %d vertebrae, %dx%dx%d, %.2f s (read %.2f, resample %.2f, weights %.2f, write %.2f; elapsed %.1f s)",
                                done, pairs.count, pair.name, p.vertebrae.count, p.image.grid.size.x,
                                p.image.grid.size.y, p.image.grid.size.z, Date().timeIntervalSince(t0),
                                p.seconds.read, p.seconds.resample, p.seconds.weights, Date().timeIntervalSince(tWrite),
                                Date().timeIntervalSince(start)))
            } catch {
                _ = results.set(i, .failure(error))
            }
        }
        var entries: [CaseEntry] = []
        for r in results.values {
            switch r {
            case .success(let e): entries.append(e)
            case .failure(let e): throw e
            case nil: throw VolumeError(path: input, message: "internal error: a case produced no result")
            }
        }
        // Move the finished files into place, then the manifest last.
        for sub in ["images", "labels", "weights"] {
            let dir = output + "/" + sub
            try? fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
            for e in entries {
                let name = e.name + ".nii.gz"
                try AtomicFile.moveIntoPlace(staging + "/" + sub + "/" + name, to: dir + "/" + name)
            }
        }
        try? fm.createDirectory(atPath: output + "/" + CaseStore.folder, withIntermediateDirectories: true)
        for e in entries {
            if let file = e.store?.file { try AtomicFile.moveIntoPlace(staging + "/" + file, to: output + "/" + file) }
        }
        var manifest = DatasetManifest(spacing: options.spacing, intensityOffset: options.intensityOffset, seed: options.seed,
                                       validationFraction: options.validationFraction, crop: options.crop, cases: entries)
        manifest.storeVersion = Int(CaseStore.version)
        manifest.downsampling = options.downsampling
        try manifest.save(to: output)
        return manifest
    }
}

/// Thread-safe slots for per-case results.
final class ResultBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var values: [Result<T, Error>?]
    private var finished = 0
    init(count: Int) { values = Array(repeating: nil, count: count) }
    /// Stores a result; returns how many cases have finished.
    func set(_ i: Int, _ r: Result<T, Error>) -> Int {
        lock.lock()
        defer { lock.unlock() }
        values[i] = r
        finished += 1
        return finished
    }
    /// The value of slot `i`, or its error (`path` names the folder when a slot is empty).
    func value(_ i: Int, path: String) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        guard let r = values[i] else { throw VolumeError(path: path, message: "internal error: a case produced no result") }
        return try r.get()
    }
}
