/// An integer label map: geometry plus one label per voxel; 0 is background, every other value one
/// instance (a vertebra). The one label volume type of the package: preprocessing, training, segmentation
/// and evaluation all hold label maps as `LabelVolume`.
public struct LabelVolume: Equatable, Sendable {
    public var grid: Grid
    /// Labels, linear index `x + nx * (y + ny * z)` (x fastest).
    public var voxels: [Int32]

    /// Largest label a file may hold: Float (the readers' voxel type) represents every integer up to 2^24 exactly.
    public static let maxLabel: Int32 = 16_777_216

    /// A label map with the given labels; `voxels.count` must equal `grid.count`.
    public init(grid: Grid, voxels: [Int32]) {
        precondition(voxels.count == grid.count, "label count \(voxels.count) != grid count \(grid.count)")
        self.grid = grid
        self.voxels = voxels
    }

    /// A label map with every voxel set to `fill`.
    public init(grid: Grid, fill: Int32 = 0) {
        self.grid = grid
        self.voxels = [Int32](repeating: fill, count: grid.count)
    }

    /// A voxel that is not a label: not a whole number in 0...`maxLabel`.
    public struct NotALabel: Error, Sendable {
        /// Linear index of the first such voxel.
        public var index: Int
        public var value: Float
    }

    /// The labels of a volume read from a file; throws `NotALabel` for the first voxel that is not a whole
    /// number in 0...`maxLabel` (NaN and infinities included). `volume.voxels.count` must equal its grid's count.
    public init(_ volume: Volume) throws {
        var labels = [Int32](repeating: 0, count: volume.voxels.count)
        var bad: NotALabel?
        volume.voxels.withUnsafeBufferPointer { v in
            labels.withUnsafeMutableBufferPointer { out in
                for i in 0..<v.count {
                    let value = v[i]
                    guard value >= 0, value <= Float(LabelVolume.maxLabel), value == value.rounded() else {
                        bad = NotALabel(index: i, value: value)
                        return
                    }
                    out[i] = Int32(value)
                }
            }
        }
        if let bad { throw bad }
        self.init(grid: volume.grid, voxels: labels)
    }

    /// The labels of a volume read from `path`; a `VolumeError` naming the file and the first voxel that is
    /// not a label otherwise.
    public init(_ volume: Volume, path: String) throws {
        do {
            try self.init(volume)
        } catch let bad as NotALabel {
            throw VolumeError(path: path, message: "label map holds \(bad.value) at voxel \(bad.index); labels must be non-negative integers")
        }
    }

    /// The labels as a Float volume (exact for labels up to `maxLabel`), for the file writers.
    public var floatVolume: Volume { Volume(grid: grid, voxels: voxels.map { Float($0) }) }

    /// The smallest file voxel type holding every label: uint8 when the largest label is at most 255, else int16.
    public var fileType: VoxelType { (voxels.max() ?? 0) <= 255 ? .uint8 : .int16 }

    /// Label at voxel (x, y, z) (no bounds check beyond the array's).
    public subscript(x: Int, y: Int, z: Int) -> Int32 {
        get { voxels[grid.linearIndex(x, y, z)] }
        set { voxels[grid.linearIndex(x, y, z)] = newValue }
    }
}

extension VolumeIO {
    /// Reads a label map; a `VolumeError` when a voxel is not a whole number in 0...`LabelVolume.maxLabel`.
    public static func readLabels(_ path: String) throws -> LabelVolume {
        try LabelVolume(read(path), path: path)
    }

    /// Writes a label map as `type` (see `LabelVolume.fileType`); the format follows the extension.
    public static func write(_ labels: LabelVolume, to path: String, as type: VoxelType) throws {
        try write(labels.floatVolume, to: path, as: type)
    }

    /// Writes a label map as MetaImage (.mhd + .raw/.zraw, or .mha), optionally zlib-compressed.
    public static func writeMetaImage(_ labels: LabelVolume, to path: String, as type: VoxelType, compressed: Bool) throws {
        try writeMetaImage(labels.floatVolume, to: path, as: type, compressed: compressed)
    }
}
