import IFCNVolume

extension LabelMap {
    /// Label map of a volume read from `path` (used in error messages): voxels must be whole numbers in
    /// 0...`LabelVolume.maxLabel`; the spine axis is taken from the volume's direction matrix.
    public init(volume: Volume, path: String) throws {
        let grid = volume.grid
        guard grid.size.x >= 0, grid.size.y >= 0, grid.size.z >= 0, volume.voxels.count == grid.count else {
            throw EvaluationError("\(path): \(volume.voxels.count) voxels for grid \(describe(grid.size))")
        }
        do {
            self.init(try LabelVolume(volume))
        } catch let bad as LabelVolume.NotALabel {
            let nx = grid.size.x, ny = grid.size.y
            let x = bad.index % nx, y = (bad.index / nx) % ny, z = bad.index / (nx * ny)
            throw EvaluationError("\(path): voxel (\(x), \(y), \(z)) holds \(bad.value), not a label "
                                  + "(labels are whole numbers from 0 to \(LabelVolume.maxLabel))")
        }
    }
}

/// Reads every case of `pairing` (one at a time) with `read` and evaluates it; `progress` sees each case as it
/// finishes. Throws, naming the files, when a file cannot be read, holds non-label values, or when a case's
/// reference and prediction differ in size or spacing.
public func evaluateCases(_ pairing: FilePairing, read: (String) throws -> Volume = VolumeIO.read,
                          progress: (CaseEvaluation) -> Void = { _ in }) throws -> EvaluationSummary {
    var cases: [CaseEvaluation] = []
    for pair in pairing.pairs {
        let reference = try LabelMap(volume: read(pair.reference), path: pair.reference)
        let prediction = try LabelMap(volume: read(pair.prediction), path: pair.prediction)
        do {
            try checkSameGrid(reference: reference, prediction: prediction, name: pair.name)
        } catch {
            throw EvaluationError("\(pair.prediction) (\(describe(prediction.size)), \(describe(prediction.spacing))) "
                                  + "is not on the grid of reference \(pair.reference) (\(describe(reference.size)), "
                                  + "\(describe(reference.spacing)))")
        }
        let result = try evaluateCase(name: pair.name, reference: reference, prediction: prediction)
        progress(result)
        cases.append(result)
    }
    return EvaluationSummary(cases: cases)
}
