import IFCNVolume

/// An integer label image: 0 is background, every other value is one instance (a vertebra).
/// Voxel (x, y, z) is at index `x + nx * (y + ny * z)`.
public struct LabelMap: Sendable {
    /// Voxels along x, y, z.
    public var size: SIMD3<Int>
    /// Voxel spacing in mm along x, y, z.
    public var spacing: SIMD3<Double>
    /// Index axis (0, 1 or 2) that runs along the spine; completeness is judged on its first and last slice.
    public var spineAxis: Int
    /// Labels, x fastest.
    public var labels: [Int32]

    /// Number of voxels.
    public var count: Int { size.x * size.y * size.z }

    /// Creates a label map; `labels.count` must equal the product of `size` and `spineAxis` must be 0, 1 or 2
    /// (programmer errors, checked with preconditions; file input goes through `init(volume:path:)`).
    public init(size: SIMD3<Int>, spacing: SIMD3<Double>, labels: [Int32], spineAxis: Int = 2) {
        precondition(size.x >= 0 && size.y >= 0 && size.z >= 0, "LabelMap: negative size \(size)")
        precondition(labels.count == size.x * size.y * size.z,
                     "LabelMap: \(labels.count) labels for size \(size)")
        precondition((0...2).contains(spineAxis), "LabelMap: spine axis \(spineAxis) is not 0, 1 or 2")
        self.size = size
        self.spacing = spacing
        self.labels = labels
        self.spineAxis = spineAxis
    }

    /// The label map of `labels` (its labels as they are, no conversion); the spine axis is `spineAxis`, by
    /// default the one of the grid's direction matrix (see `spineAxis(direction:)`).
    public init(_ labels: LabelVolume, spineAxis: Int? = nil) {
        self.init(size: labels.grid.size, spacing: labels.grid.spacing, labels: labels.voxels,
                  spineAxis: spineAxis ?? LabelMap.spineAxis(direction: labels.grid.direction))
    }

    /// The index axis whose world direction is closest to superior-inferior: the column `j` of the
    /// row-major 3x3 direction matrix that maximises `|direction[2][j]|` (ties: the larger axis, so z wins for
    /// degenerate matrices). Returns 2 for a malformed matrix.
    public static func spineAxis(direction: [Double]) -> Int {
        guard direction.count == 9, direction.allSatisfy({ $0.isFinite }) else { return 2 }
        var best = 2
        for j in [1, 0] where abs(direction[6 + j]) > abs(direction[6 + best]) { best = j }
        return best
    }
}

/// An axis-aligned box of voxels, bounds inclusive.
public struct VoxelBox: Equatable, Sendable {
    /// Smallest x, y, z inside the box.
    public var lower: SIMD3<Int>
    /// Largest x, y, z inside the box.
    public var upper: SIMD3<Int>

    public init(lower: SIMD3<Int>, upper: SIMD3<Int>) {
        self.lower = lower
        self.upper = upper
    }

    /// Voxels along each axis.
    public var size: SIMD3<Int> { upper &- lower &+ 1 }

    /// The smallest box holding both boxes.
    public func union(_ other: VoxelBox) -> VoxelBox {
        VoxelBox(lower: pointwiseMin(lower, other.lower), upper: pointwiseMax(upper, other.upper))
    }
}
