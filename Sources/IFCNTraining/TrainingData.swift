import Foundation
import IFCNVolume

/// One preprocessed case: HU image, label map and weight map on the same canonical grid, with its
/// vertebrae superior to inferior. The voxels are held in memory, mapped from the data set's
/// training store (read only where sampled), or left in the NIfTI files until validation reads them.
public struct TrainingCase: Sendable {
    /// Where the voxels are.
    public enum Storage: Sendable {
        /// Float volumes in memory (data set folders without a training store, tests).
        case memory(image: Volume, labels: LabelVolume, weights: Volume)
        /// The case's file of the training store, mapped read-only.
        case mapped(MappedCaseStore)
        /// NIfTI files read when the case is validated (validation cases of folders without a store).
        case files(image: String, labels: String)
    }

    public let name: String
    public let grid: Grid
    public let vertebrae: [VertebraInfo]
    public let storage: Storage

    public init(name: String, grid: Grid, vertebrae: [VertebraInfo], storage: Storage) {
        self.name = name; self.grid = grid; self.vertebrae = vertebrae; self.storage = storage
    }

    public init(name: String, image: Volume, labels: LabelVolume, weights: Volume, vertebrae: [VertebraInfo]) {
        self.init(name: name, grid: image.grid, vertebrae: vertebrae, storage: .memory(image: image, labels: labels, weights: weights))
    }

    /// Whether the sampler can read patches of this case (in memory or mapped).
    public var readsPatches: Bool {
        if case .files = storage { return false }
        return true
    }

    /// The whole image and label map, read now (for validation: a copy for a mapped case, the NIfTI
    /// files for a case left on disk); released by the caller when done.
    public func volumes() throws -> (image: Volume, labels: LabelVolume) {
        switch storage {
        case .memory(let image, let labels, _): return (image, labels)
        case .mapped(let m): return (m.image(grid: grid), m.labels(grid: grid))
        case .files(let image, let labels):
            let v = (try VolumeIO.read(image), try VolumeIO.readLabels(labels))
            guard v.0.grid.size == grid.size, v.1.grid.size == grid.size else {
                throw VolumeError(path: labels, message: "grid \(v.1.grid.size) or its image's \(v.0.grid.size) differs from dataset.json (\(grid.size))")
            }
            return v
        }
    }

    /// Image voxels [index, index + n) (linear index, x fastest) into `out`.
    @inline(__always)
    func imageRow(_ index: Int, _ n: Int, into out: UnsafeMutablePointer<Float>) {
        switch storage {
        case .memory(let image, _, _): image.voxels.withUnsafeBufferPointer { out.update(from: $0.baseAddress! + index, count: n) }
        case .mapped(let m): m.imageRow(index, n, into: out)
        case .files: preconditionFailure("case \(name) is not loaded")
        }
    }

    /// Labels [index, index + n) into `out`.
    @inline(__always)
    func labelRow(_ index: Int, _ n: Int, into out: UnsafeMutablePointer<Int32>) {
        switch storage {
        case .memory(_, let labels, _): labels.voxels.withUnsafeBufferPointer { out.update(from: $0.baseAddress! + index, count: n) }
        case .mapped(let m): m.labelRow(index, n, into: out)
        case .files: preconditionFailure("case \(name) is not loaded")
        }
    }

    /// Weights [index, index + n) into `out`.
    @inline(__always)
    func weightRow(_ index: Int, _ n: Int, into out: UnsafeMutablePointer<Float>) {
        switch storage {
        case .memory(_, _, let weights): weights.voxels.withUnsafeBufferPointer { out.update(from: $0.baseAddress! + index, count: n) }
        case .mapped(let m): m.weightRow(index, n, into: out)
        case .files: preconditionFailure("case \(name) is not loaded")
        }
    }
}

/// The cases of a preprocessed data set folder (`ifcn preprocess` output).
public struct TrainingData: Sendable {
    public let manifest: DatasetManifest
    public let training: [TrainingCase]
    public let validation: [TrainingCase]
    /// Lines for the log (e.g. that the folder has no training store).
    public let notes: [String]

    /// Opens the data set: with a training store (dataset.json `store`), every case is mapped and
    /// nothing is read; without one (folders of an older ifcn), the training cases are read into
    /// memory as before and validation cases are read when validated. Errors name the file.
    public static func load(from dir: String, maxValidationCases: Int? = nil) throws -> TrainingData {
        let manifest = try DatasetManifest.load(from: dir)
        func path(_ rel: String) -> String { URL(fileURLWithPath: dir).appendingPathComponent(rel).path }
        func open(_ e: CaseEntry, split: DatasetSplit) throws -> TrainingCase {
            guard !e.vertebrae.isEmpty else {
                throw VolumeError(path: path(e.label), message: "no labelled vertebrae in this case")
            }
            if let s = e.store {
                let m = try MappedCaseStore(path: path(s.file), entry: s, grid: e.grid)
                return TrainingCase(name: e.name, grid: e.grid, vertebrae: e.vertebrae, storage: .mapped(m))
            }
            if split == .validation {
                for f in [e.image, e.label] where !FileManager.default.fileExists(atPath: path(f)) {
                    throw VolumeError(path: path(f), message: "file not found")
                }
                return TrainingCase(name: e.name, grid: e.grid, vertebrae: e.vertebrae, storage: .files(image: path(e.image), labels: path(e.label)))
            }
            let image = try VolumeIO.read(path(e.image))
            let labels = try VolumeIO.readLabels(path(e.label))
            let weights = try VolumeIO.read(path(e.weight))
            guard image.grid.size == labels.grid.size, image.grid.size == weights.grid.size else {
                throw VolumeError(path: path(e.label), message: "grid \(labels.grid.size) differs from its image \(image.grid.size)")
            }
            return TrainingCase(name: e.name, image: image, labels: labels, weights: weights, vertebrae: e.vertebrae)
        }
        let train = try manifest.cases(in: .train).map { try open($0, split: .train) }
        var valEntries = manifest.cases(in: .validation)
        if let n = maxValidationCases { valEntries = Array(valEntries.prefix(max(0, n))) }
        let val = try valEntries.map { try open($0, split: .validation) }
        guard !train.isEmpty else {
            throw VolumeError(path: path(DatasetManifest.fileName), message: "no training cases (split \"train\")")
        }
        var notes: [String] = []
        let missing = manifest.cases.filter { $0.store == nil }.count
        if missing > 0 {
            notes.append("note: \(missing) of \(manifest.cases.count) cases of \(dir) have no training store (a folder of an older ifcn): "
                         + "their training cases are read into memory on every rank; `ifcn store build --data \(dir)` converts the folder once")
        }
        notes += manifest.fieldOfViewNotes
        return TrainingData(manifest: manifest, training: train, validation: val, notes: notes)
    }
}
