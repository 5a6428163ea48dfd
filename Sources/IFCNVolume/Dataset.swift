import Foundation
import IFCNSupport

/// Which part of a data set a case belongs to (stored as "train" or "validation" in dataset.json).
public enum DatasetSplit: String, Codable, Sendable, CaseIterable {
    case train, validation
}

/// Crop along z applied by preprocessing (stored as "mid" or "none" in dataset.json).
public enum CropMode: String, Codable, Sendable, CaseIterable {
    /// Keep the slab between the centroid planes of the first and last vertebra.
    case mid
    /// Keep all slices.
    case none
}

/// One labelled vertebra of a preprocessed case.
public struct VertebraInfo: Codable, Sendable, Equatable {
    /// Label value in the label map.
    public var label: Int
    /// Number of voxels carrying the label.
    public var voxels: Int
    /// Centroid in world coordinates (LPS mm).
    public var centroidMM: SIMD3<Double>
    /// Centroid as a continuous voxel index of the preprocessed grid.
    public var centroidIndex: SIMD3<Double>
    /// Inclusive bounding box (voxel indices of the preprocessed grid).
    public var bboxMin: SIMD3<Int>
    public var bboxMax: SIMD3<Int>

    public init(label: Int, voxels: Int, centroidMM: SIMD3<Double>, centroidIndex: SIMD3<Double>,
                bboxMin: SIMD3<Int>, bboxMax: SIMD3<Int>) {
        self.label = label
        self.voxels = voxels
        self.centroidMM = centroidMM
        self.centroidIndex = centroidIndex
        self.bboxMin = bboxMin
        self.bboxMax = bboxMax
    }

    /// All labelled vertebrae of a label map, superior to inferior (descending centroid z; ties by label).
    public static func collect(from labels: LabelVolume) -> [VertebraInfo] {
        struct Acc { var n = 0; var sum = SIMD3<Double>(repeating: 0); var lo = SIMD3<Int>(repeating: .max); var hi = SIMD3<Int>(repeating: .min) }
        var acc: [Int: Acc] = [:]
        let g = labels.grid
        labels.voxels.withUnsafeBufferPointer { vox in
            var i = 0
            for z in 0..<g.size.z {
                for y in 0..<g.size.y {
                    for x in 0..<g.size.x {
                        let v = vox[i]
                        i += 1
                        guard v > 0 else { continue }
                        let label = Int(v)
                        var a = acc[label] ?? Acc()
                        let p = SIMD3(x, y, z)
                        a.n += 1
                        a.sum += SIMD3(Double(x), Double(y), Double(z))
                        a.lo = pointwiseMin(a.lo, p)
                        a.hi = pointwiseMax(a.hi, p)
                        acc[label] = a
                    }
                }
            }
        }
        let infos = acc.map { label, a -> VertebraInfo in
            let c = a.sum / Double(a.n)
            return VertebraInfo(label: label, voxels: a.n, centroidMM: g.world(c), centroidIndex: c, bboxMin: a.lo, bboxMax: a.hi)
        }
        return infos.sorted { a, b in
            a.centroidMM.z != b.centroidMM.z ? a.centroidMM.z > b.centroidMM.z : a.label < b.label
        }
    }
}

/// One case of a preprocessed data set (paths relative to the data set folder).
public struct CaseEntry: Codable, Sendable {
    public var name: String
    public var image: String
    public var label: String
    public var weight: String
    public var split: DatasetSplit
    /// The preprocessed (canonical, isotropic) grid.
    public var grid: Grid
    /// Labelled vertebrae, superior to inferior.
    public var vertebrae: [VertebraInfo]
    /// The files the case came from.
    public var sourceImage: String?
    public var sourceLabel: String?
    /// Slices [first, last] of the canonical grid kept by the crop (nil when not cropped).
    public var cropZ: [Int]?
    /// The case's training store file (nil in folders written before the store existed).
    public var store: CaseStoreEntry?

    public init(name: String, image: String, label: String, weight: String, split: DatasetSplit, grid: Grid,
                vertebrae: [VertebraInfo], sourceImage: String? = nil, sourceLabel: String? = nil, cropZ: [Int]? = nil,
                store: CaseStoreEntry? = nil) {
        self.name = name
        self.image = image
        self.label = label
        self.weight = weight
        self.split = split
        self.grid = grid
        self.vertebrae = vertebrae
        self.sourceImage = sourceImage
        self.sourceLabel = sourceLabel
        self.cropZ = cropZ
        self.store = store
    }
}

extension CaseEntry {
    /// Millimetres of image beyond the labelled vertebrae's bounding box on each side of the preprocessed grid:
    /// [x-, x+, y-, y+, z-, z+]. Zero where a label touches the border.
    public var contextMarginsMM: [Double] {
        guard let first = vertebrae.first else { return [] }
        var lo = first.bboxMin, hi = first.bboxMax
        for v in vertebrae { lo = pointwiseMin(lo, v.bboxMin); hi = pointwiseMax(hi, v.bboxMax) }
        var margins: [Double] = []
        for a in 0..<3 {
            let spacing = grid.spacing[a]
            margins.append(Double(lo[a]) * spacing)
            margins.append(Double(grid.size[a] - 1 - hi[a]) * spacing)
        }
        return margins
    }

    /// Most in-plane context (mm) a scan may have to count as cropped to its labels.
    public static let croppedContextMM = 10.0

    /// The scan ends at its labelled vertebrae in the axial plane: less than `croppedContextMM` of image beyond them
    /// on each of the four in-plane sides (x-, x+, y-, y+). A model trained on such scans never sees the tissue
    /// around a vertebra, and a scan with that tissue looks different to it (docs/ACCURACY.md, "Field of view").
    public var isCroppedToLabels: Bool {
        let m = contextMarginsMM
        return m.count == 6 && m[0..<4].allSatisfy { $0 < Self.croppedContextMM }
    }
}

/// dataset.json of a preprocessed data set.
public struct DatasetManifest: Codable, Sendable {
    /// Isotropic voxel spacing (mm) of every case.
    public var spacing: Double
    /// HU = stored value + intensityOffset.
    public var intensityOffset: Double
    /// Seed of the train/validation split.
    public var seed: UInt64
    /// Fraction of cases held out for validation.
    public var validationFraction: Double
    /// Crop mode used.
    public var crop: CropMode
    public var cases: [CaseEntry]
    /// Filter of the images before resampling; nil in data sets made before it existed (no filter), which
    /// `segment` must then match.
    public var downsampling: DownsamplingFilter?
    /// Format version of the training store (`CaseStore.version`); nil when the folder has none.
    public var storeVersion: Int?

    public init(spacing: Double, intensityOffset: Double, seed: UInt64, validationFraction: Double, crop: CropMode,
                cases: [CaseEntry]) {
        self.spacing = spacing
        self.intensityOffset = intensityOffset
        self.seed = seed
        self.validationFraction = validationFraction
        self.crop = crop
        self.cases = cases
    }

    /// Warnings about the training cases' fields of view: a data set whose training scans are all cropped to
    /// their labels, or that mixes such scans with scans that show the tissue around the spine. Empty when
    /// the training cases agree.
    public var fieldOfViewNotes: [String] {
        let train = cases.filter { $0.split == .train }
        let cropped = train.filter(\.isCroppedToLabels).map(\.name), wide = train.filter { !$0.isCroppedToLabels }.map(\.name)
        guard !cropped.isEmpty else { return [] }
        let what = "cropped to the labelled vertebrae (under \(Int(CaseEntry.croppedContextMM)) mm of tissue around them "
            + "in the axial plane): \(cropped.joined(separator: ", "))"
        if wide.isEmpty {
            return ["note: every training scan is \(what); the model will not see the tissue around a vertebra and may "
                    + "fail on scans that show it (docs/ACCURACY.md, \"Field of view\")"]
        }
        return ["note: training scans differ in field of view: \(what); with the tissue around the spine: "
                + "\(wide.joined(separator: ", ")) (docs/ACCURACY.md, \"Field of view\")"]
    }

    /// File name of the manifest inside a data set folder.
    public static let fileName = "dataset.json"

    /// Loads `dir/dataset.json`.
    public static func load(from dir: String) throws -> DatasetManifest {
        let path = URL(fileURLWithPath: dir).appendingPathComponent(fileName).path
        guard let data = FileManager.default.contents(atPath: path) else {
            throw VolumeError(path: path, message: "cannot read the data set manifest")
        }
        do {
            return try JSONDecoder().decode(DatasetManifest.self, from: data)
        } catch {
            throw VolumeError(path: path, message: "invalid data set manifest: \(error)")
        }
    }

    /// Writes `dir/dataset.json` atomically.
    public func save(to dir: String) throws {
        let path = URL(fileURLWithPath: dir).appendingPathComponent(DatasetManifest.fileName).path
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(self), to: path)
    }

    /// Cases of one split.
    public func cases(in split: DatasetSplit) -> [CaseEntry] { cases.filter { $0.split == split } }
}
