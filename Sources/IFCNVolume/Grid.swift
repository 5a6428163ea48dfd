import Foundation
import IFCNSupport

/// Geometry of a 3-D voxel grid in patient world coordinates (LPS mm, as ITK).
///
/// World position of continuous index `i`: `origin + direction * (spacing * i)`.
public struct Grid: Equatable, Sendable, Codable {
    /// Number of voxels along each index axis (nx, ny, nz).
    public var size: SIMD3<Int>
    /// Millimetres per index step along each index axis.
    public var spacing: SIMD3<Double>
    /// World position (LPS mm) of voxel index (0, 0, 0).
    public var origin: SIMD3<Double>
    /// 3x3 row-major; column j is the unit world (LPS) direction of index axis j.
    public var direction: [Double]

    /// A grid; `direction` must hold 9 values (row-major 3x3).
    public init(size: SIMD3<Int>, spacing: SIMD3<Double>, origin: SIMD3<Double>, direction: [Double]) {
        precondition(direction.count == 9, "Grid direction must be a 3x3 matrix (9 values)")
        self.size = size
        self.spacing = spacing
        self.origin = origin
        self.direction = direction
    }

    private enum CodingKeys: String, CodingKey { case size, spacing, origin, direction }

    /// Decodes and validates a grid (e.g. from dataset.json).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        size = try c.decode(SIMD3<Int>.self, forKey: .size)
        spacing = try c.decode(SIMD3<Double>.self, forKey: .spacing)
        origin = try c.decode(SIMD3<Double>.self, forKey: .origin)
        direction = try c.decode([Double].self, forKey: .direction)
        guard direction.count == 9 else {
            throw DecodingError.dataCorruptedError(forKey: .direction, in: c, debugDescription: "direction must hold 9 values")
        }
        guard size.x >= 1, size.y >= 1, size.z >= 1, spacing.x > 0, spacing.y > 0, spacing.z > 0 else {
            throw DecodingError.dataCorruptedError(forKey: .size, in: c, debugDescription: "size and spacing must be positive")
        }
    }

    /// Row-major 3x3 identity.
    public static let identity: [Double] = [1, 0, 0, 0, 1, 0, 0, 0, 1]

    /// A grid with identity direction (canonical LPS orientation).
    public static func canonical(size: SIMD3<Int>, spacing: SIMD3<Double>, origin: SIMD3<Double>) -> Grid {
        Grid(size: size, spacing: spacing, origin: origin, direction: identity)
    }

    /// Number of voxels, nx * ny * nz.
    public var count: Int { size.x * size.y * size.z }

    /// Linear index of voxel (x, y, z): x fastest.
    @inline(__always)
    public func linearIndex(_ x: Int, _ y: Int, _ z: Int) -> Int { x + size.x * (y + size.y * z) }

    /// Index-to-world matrix `direction * diag(spacing)`, row-major.
    public var indexToWorldMatrix: [Double] {
        var m = [Double](repeating: 0, count: 9)
        for r in 0..<3 {
            for c in 0..<3 { m[r * 3 + c] = direction[r * 3 + c] * spacing[c] }
        }
        return m
    }

    /// World-to-index matrix, the inverse of `indexToWorldMatrix` (row-major).
    public var worldToIndexMatrix: [Double] { invert3x3(indexToWorldMatrix) ?? Grid.identity }

    /// World (LPS mm) position of a continuous voxel index.
    public func world(_ index: SIMD3<Double>) -> SIMD3<Double> {
        let m = indexToWorldMatrix
        return origin + SIMD3(m[0] * index.x + m[1] * index.y + m[2] * index.z,
                              m[3] * index.x + m[4] * index.y + m[5] * index.z,
                              m[6] * index.x + m[7] * index.y + m[8] * index.z)
    }

    /// Continuous voxel index of a world (LPS mm) position.
    public func continuousIndex(_ world: SIMD3<Double>) -> SIMD3<Double> {
        let m = worldToIndexMatrix
        let d = world - origin
        return SIMD3(m[0] * d.x + m[1] * d.y + m[2] * d.z,
                     m[3] * d.x + m[4] * d.y + m[5] * d.z,
                     m[6] * d.x + m[7] * d.y + m[8] * d.z)
    }

    /// True when both grids describe the same voxels within `tolerance` mm (and 1e-4 in direction).
    public func isClose(to other: Grid, tolerance: Double = 1e-3) -> Bool {
        guard size == other.size else { return false }
        for i in 0..<3 {
            if abs(spacing[i] - other.spacing[i]) > tolerance { return false }
            if abs(origin[i] - other.origin[i]) > tolerance { return false }
        }
        for i in 0..<9 where abs(direction[i] - other.direction[i]) > 1e-4 { return false }
        return true
    }

    /// Short human-readable description (for error messages).
    public var summary: String {
        func f(_ v: Double) -> String { String(format: "%.4g", v) }
        return "size \(size.x)x\(size.y)x\(size.z), spacing \(f(spacing.x))x\(f(spacing.y))x\(f(spacing.z)) mm, "
            + "origin (\(f(origin.x)), \(f(origin.y)), \(f(origin.z)))"
    }
}

/// Inverse of a row-major 3x3 matrix, nil when singular.
func invert3x3(_ m: [Double]) -> [Double]? {
    let a = m[0], b = m[1], c = m[2], d = m[3], e = m[4], f = m[5], g = m[6], h = m[7], i = m[8]
    let c00 = e * i - f * h, c01 = -(d * i - f * g), c02 = d * h - e * g
    let det = a * c00 + b * c01 + c * c02
    guard det.isFinite, abs(det) > 1e-300 else { return nil }
    let inv = 1 / det
    return [c00 * inv, -(b * i - c * h) * inv, (b * f - c * e) * inv,
            c01 * inv, (a * i - c * g) * inv, -(a * f - c * d) * inv,
            c02 * inv, -(a * h - b * g) * inv, (a * e - b * d) * inv]
}


/// A scalar 3-D image: geometry plus voxel values as Float.
public struct Volume: Sendable {
    public var grid: Grid
    /// Voxel values, linear index `x + nx * (y + ny * z)` (x fastest).
    public var voxels: [Float]

    /// A volume with the given voxels; `voxels.count` must equal `grid.count`.
    public init(grid: Grid, voxels: [Float]) {
        precondition(voxels.count == grid.count, "voxel count \(voxels.count) != grid count \(grid.count)")
        self.grid = grid
        self.voxels = voxels
    }

    /// A volume with every voxel set to `fill`.
    public init(grid: Grid, fill: Float) {
        self.grid = grid
        self.voxels = [Float](repeating: fill, count: grid.count)
    }

    /// Value at voxel (x, y, z) (no bounds check beyond the array's).
    public subscript(x: Int, y: Int, z: Int) -> Float {
        get { voxels[grid.linearIndex(x, y, z)] }
        set { voxels[grid.linearIndex(x, y, z)] = newValue }
    }
}

/// Voxel storage types for writing.
public enum VoxelType: String, Sendable, Codable, CaseIterable {
    case uint8, int8, uint16, int16, uint32, int32, float32, float64

    /// Bytes per voxel.
    public var byteSize: Int {
        switch self {
        case .uint8, .int8: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .float64: return 8
        }
    }

    /// Representable range for integer types (values are rounded and clamped into it when written).
    var integerRange: ClosedRange<Double>? {
        switch self {
        case .uint8: return 0...255
        case .int8: return -128...127
        case .uint16: return 0...65535
        case .int16: return -32768...32767
        case .uint32: return 0...4_294_967_295
        case .int32: return -2_147_483_648...2_147_483_647
        case .float32, .float64: return nil
        }
    }
}

/// An error reading or writing a volume file, naming the file and the problem.
public typealias VolumeError = FileError
