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

/// Reads every case of `pairing` (one at a time) with `read` and evaluates it in world space; `progress` sees
/// each case as it finishes. A prediction on the reference's grid (size, spacing, origin and direction within
/// `Grid.isClose`) is compared voxel for voxel; one on another grid that covers the reference's extent is
/// resampled (nearest neighbour) onto the reference grid first. Throws, naming the files, when a file cannot
/// be read, holds non-label values, or when a prediction's grid does not cover its reference's.
public func evaluateCases(_ pairing: FilePairing, read: (String) throws -> Volume = { try VolumeIO.read($0) },
                          progress: (CaseEvaluation) -> Void = { _ in }) throws -> EvaluationSummary {
    var cases: [CaseEvaluation] = []
    for pair in pairing.pairs {
        let referenceVolume = try read(pair.reference)
        let reference = try LabelMap(volume: referenceVolume, path: pair.reference)
        let predictionVolume = try read(pair.prediction)
        var prediction = try LabelMap(volume: predictionVolume, path: pair.prediction)
        let rg = referenceVolume.grid, pg = predictionVolume.grid
        if !pg.isClose(to: rg, tolerance: 1e-3 * min(rg.spacing.min(), 1)) {
            guard gridCovers(pg, rg) else {
                throw EvaluationError("\(pair.prediction) (\(pg.summary)) does not cover the space of reference "
                                      + "\(pair.reference) (\(rg.summary)): not the same scan, or a wrong origin or direction")
            }
            let onReference = resample(LabelVolume(grid: pg, voxels: prediction.labels), onto: rg)
            prediction = LabelMap(onReference, spineAxis: reference.spineAxis)
        }
        let result = try evaluateCase(name: pair.name, reference: reference, prediction: prediction)
        progress(result)
        cases.append(result)
    }
    return EvaluationSummary(cases: cases)
}

/// Whether grid `a` covers the extent of grid `b` (the voxel boxes, half a voxel beyond the centres), to a
/// tenth of a voxel of `a`.
func gridCovers(_ a: Grid, _ b: Grid) -> Bool {
    let n = b.size
    for cx in [-0.5, Double(n.x) - 0.5] {
        for cy in [-0.5, Double(n.y) - 0.5] {
            for cz in [-0.5, Double(n.z) - 0.5] {
                let i = a.continuousIndex(b.world(SIMD3(cx, cy, cz)))
                for axis in 0..<3 where i[axis] < -0.6 || i[axis] > Double(a.size[axis]) - 0.4 { return false }
            }
        }
    }
    return true
}
