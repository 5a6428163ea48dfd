import Foundation
import IFCNVolume

/// One preprocessed case held in memory: HU image, label map and weight map on the same
/// canonical grid, with its vertebrae superior to inferior.
public struct TrainingCase: Sendable {
    public let name: String
    public let image: Volume
    public let labels: LabelVolume
    public let weights: Volume
    public let vertebrae: [VertebraInfo]
    public var grid: Grid { image.grid }

    public init(name: String, image: Volume, labels: LabelVolume, weights: Volume, vertebrae: [VertebraInfo]) {
        self.name = name; self.image = image; self.labels = labels; self.weights = weights; self.vertebrae = vertebrae
    }
}

/// The cases of a preprocessed data set folder (`ifcn preprocess` output).
public struct TrainingData: Sendable {
    public let manifest: DatasetManifest
    public let training: [TrainingCase]
    public let validation: [TrainingCase]

    /// Loads every case of both splits; errors name the file.
    public static func load(from dir: String, maxValidationCases: Int? = nil) throws -> TrainingData {
        let manifest = try DatasetManifest.load(from: dir)
        func path(_ rel: String) -> String { URL(fileURLWithPath: dir).appendingPathComponent(rel).path }
        func load(_ e: CaseEntry) throws -> TrainingCase {
            let image = try VolumeIO.read(path(e.image))
            let labels = try VolumeIO.readLabels(path(e.label))
            let weights = try VolumeIO.read(path(e.weight))
            guard image.grid.size == labels.grid.size, image.grid.size == weights.grid.size else {
                throw VolumeError(path: path(e.label), message: "grid \(labels.grid.size) differs from its image \(image.grid.size)")
            }
            guard !e.vertebrae.isEmpty else {
                throw VolumeError(path: path(e.label), message: "no labelled vertebrae in this case")
            }
            return TrainingCase(name: e.name, image: image, labels: labels, weights: weights, vertebrae: e.vertebrae)
        }
        let train = try manifest.cases(in: .train).map(load)
        var valEntries = manifest.cases(in: .validation)
        if let n = maxValidationCases { valEntries = Array(valEntries.prefix(max(0, n))) }
        let val = try valEntries.map(load)
        guard !train.isEmpty else {
            throw VolumeError(path: path(DatasetManifest.fileName), message: "no training cases (split \"train\")")
        }
        return TrainingData(manifest: manifest, training: train, validation: val)
    }
}
