import Foundation
import IFCNSupport

/// The one place a grid's size is derived from an extent and a spacing (canonical grids for preprocessing and
/// segmentation): the size is computed in floating point and checked against a voxel cap and `MemoryLimit`
/// before any Int conversion or allocation, so a spacing of 0.001 mm (or a corrupt extent) ends in an error
/// saying what the grid would have needed.
public enum GridSize {
    /// Default cap on the voxels of a derived grid: the same as for an image read from a file.
    public static let defaultMaxVoxels = VolumeIO.maxVoxels

    /// Voxels along each axis of an isotropic grid of `spacing` mm whose voxel centres span `extent` mm
    /// (`floor(extent / spacing + 1e-6) + 1`). Throws `TooLarge` past `maxVoxels` voxels or past the memory
    /// limit at 4 bytes a voxel, and for a spacing or extent that is not a finite, positive number.
    public static func isotropic(extent: SIMD3<Double>, spacing: Double,
                                 maxVoxels: Int = defaultMaxVoxels) throws -> SIMD3<Int> {
        guard spacing.isFinite, spacing > 0 else {
            throw TooLarge(message: "grid spacing must be a positive number of mm, got \(spacing)")
        }
        guard extent.x.isFinite, extent.y.isFinite, extent.z.isFinite,
              extent.x >= 0, extent.y >= 0, extent.z >= 0 else {
            throw TooLarge(message: "grid extent \(extent) mm is not finite")
        }
        let axes = SIMD3<Double>((extent.x / spacing + 1e-6).rounded(.down) + 1,
                                 (extent.y / spacing + 1e-6).rounded(.down) + 1,
                                 (extent.z / spacing + 1e-6).rounded(.down) + 1)
        let voxels = axes.x * axes.y * axes.z
        func what() -> String {
            func mm(_ v: Double) -> String { String(format: "%.4g", v) }
            return "a \(mm(spacing)) mm grid over \(mm(extent.x)) x \(mm(extent.y)) x \(mm(extent.z)) mm would need "
                + "\(MemoryLimit.describe(count: voxels)) voxels"
        }
        guard voxels.isFinite, voxels <= Double(maxVoxels) else {
            throw TooLarge(message: "\(what()) (\(MemoryLimit.describe(bytes: 4 * voxels))), more than the limit of "
                           + "\(maxVoxels) voxels")
        }
        try MemoryLimit.check(4 * voxels, what())
        return SIMD3(Int(axes.x), Int(axes.y), Int(axes.z))
    }
}
