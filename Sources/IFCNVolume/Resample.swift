import Foundation
import IFCNSupport

/// Interpolation used when resampling: trilinear for images, nearest neighbour for label maps.
public enum Interpolation: Sendable {
    case linear, nearest
}

/// The canonical (identity-direction, LPS) grid with isotropic `spacing` whose voxel centres cover the world
/// bounding box of the voxel centres of `grid`. Throws `TooLarge` when that grid would exceed the voxel or
/// memory limits (see `GridSize`).
public func canonicalGrid(covering grid: Grid, spacing: Double) throws -> Grid {
    var lo = SIMD3<Double>(repeating: .infinity), hi = SIMD3<Double>(repeating: -.infinity)
    let last = SIMD3<Double>(Double(grid.size.x - 1), Double(grid.size.y - 1), Double(grid.size.z - 1))
    for corner in 0..<8 {
        let idx = SIMD3<Double>(corner & 1 == 0 ? 0 : last.x, corner & 2 == 0 ? 0 : last.y, corner & 4 == 0 ? 0 : last.z)
        let w = grid.world(idx)
        lo = pointwiseMin(lo, w)
        hi = pointwiseMax(hi, w)
    }
    let size = try GridSize.isotropic(extent: hi - lo, spacing: spacing)
    return Grid.canonical(size: size, spacing: SIMD3(repeating: spacing), origin: lo)
}

/// Reorients to canonical LPS (identity direction) and resamples isotropically onto an axis-aligned grid
/// covering the scan (see `canonicalGrid(covering:spacing:)`).
public func resampleToCanonical(_ v: Volume, spacing: Double, interpolation: Interpolation, fill: Float,
                                filter: DownsamplingFilter = .none) throws -> Volume {
    resample(v, onto: try canonicalGrid(covering: v.grid, spacing: spacing), interpolation: interpolation, fill: fill,
             filter: filter)
}

/// Resamples `v` onto `grid`. Output voxel centres map to continuous input indices exactly as ITK does
/// (world = origin + D*S*i; index = (D*S)^-1 (world - origin)); a point is inside when every index lies in
/// [-0.5, n - 0.5). Nearest rounds half up (floor(c + 0.5)); linear clamps neighbours to the image.
/// `filter` `.gaussian` first smooths the image to the resolution of the output grid's coarsest spacing
/// (`Volume.smoothed(toResolution:)`), which changes nothing along axes where the output is finer.
public func resample(_ v: Volume, onto grid: Grid, interpolation: Interpolation, fill: Float,
                     filter: DownsamplingFilter = .none) -> Volume {
    let v = filter == .gaussian ? v.smoothed(toResolution: grid.spacing.max()) : v
    let inSize = v.grid.size
    let inN = SIMD3<Double>(Double(inSize.x), Double(inSize.y), Double(inSize.z))
    let sx = inSize.x, sxy = inSize.x * inSize.y
    let voxels = resampleVoxels(v.voxels, from: v.grid, onto: grid, fill: fill) { src, c in
        switch interpolation {
        case .nearest:
            return src[nearestIndex(c, sx: sx, sxy: sxy)]
        case .linear:
            let cx = min(max(c.x, 0), inN.x - 1), cy = min(max(c.y, 0), inN.y - 1)
            let cz = min(max(c.z, 0), inN.z - 1)
            let x0 = Int(cx), y0 = Int(cy), z0 = Int(cz)
            let x1 = min(x0 + 1, inSize.x - 1), y1 = min(y0 + 1, inSize.y - 1)
            let z1 = min(z0 + 1, inSize.z - 1)
            let t = SIMD3(cx - Double(x0), cy - Double(y0), cz - Double(z0))
            return Float(trilinear(t, x: (x0, x1), y: (y0, y1), z: (z0, z1)) { i, j, k in Double(src[i + sx * j + sxy * k]) })
        }
    }
    return Volume(grid: grid, voxels: voxels)
}

/// Resamples a label map onto `grid` by nearest neighbour (as `resample(_:onto:interpolation:fill:)` with
/// `.nearest`); voxels outside the input are `fill`.
public func resample(_ v: LabelVolume, onto grid: Grid, fill: Int32 = 0) -> LabelVolume {
    let sx = v.grid.size.x, sxy = v.grid.size.x * v.grid.size.y
    let voxels = resampleVoxels(v.voxels, from: v.grid, onto: grid, fill: fill) { src, c in
        src[nearestIndex(c, sx: sx, sxy: sxy)]
    }
    return LabelVolume(grid: grid, voxels: voxels)
}

/// Reorients a label map to canonical LPS and resamples it isotropically (nearest; 0 outside), onto the grid of
/// `resampleToCanonical(_:spacing:interpolation:fill:)`.
public func resampleToCanonical(_ v: LabelVolume, spacing: Double) throws -> LabelVolume {
    resample(v, onto: try canonicalGrid(covering: v.grid, spacing: spacing))
}

/// Trilinear interpolation between the eight values `at(x, y, z)` of the corners (x.0 or x.1, ...) with
/// fractions `t` along each axis.
@inlinable @inline(__always)
public func trilinear(_ t: SIMD3<Double>, x: (Int, Int), y: (Int, Int), z: (Int, Int),
                      _ at: (Int, Int, Int) -> Double) -> Double {
    let c00 = at(x.0, y.0, z.0) + t.x * (at(x.1, y.0, z.0) - at(x.0, y.0, z.0))
    let c10 = at(x.0, y.1, z.0) + t.x * (at(x.1, y.1, z.0) - at(x.0, y.1, z.0))
    let c01 = at(x.0, y.0, z.1) + t.x * (at(x.1, y.0, z.1) - at(x.0, y.0, z.1))
    let c11 = at(x.0, y.1, z.1) + t.x * (at(x.1, y.1, z.1) - at(x.0, y.1, z.1))
    let c0 = c00 + t.y * (c10 - c00), c1 = c01 + t.y * (c11 - c01)
    return c0 + t.z * (c1 - c0)
}

/// Linear input index of the nearest voxel to continuous index `c` (half rounds up).
@inline(__always)
private func nearestIndex(_ c: SIMD3<Double>, sx: Int, sxy: Int) -> Int {
    let ix = Int((c.x + 0.5).rounded(.down)), iy = Int((c.y + 0.5).rounded(.down))
    let iz = Int((c.z + 0.5).rounded(.down))
    return ix + sx * iy + sxy * iz
}

/// The voxels of `grid`, each `sample(input, continuous input index)` where the point lies inside the input
/// grid `inGrid` and `fill` elsewhere; the index mapping is ITK's (see `resample(_:onto:interpolation:fill:)`).
@inline(__always)
private func resampleVoxels<T>(_ input: [T], from inGrid: Grid, onto grid: Grid, fill: T,
                               sample: (UnsafeBufferPointer<T>, SIMD3<Double>) -> T) -> [T] {
    var out = [T](repeating: fill, count: grid.count)
    let outM = grid.indexToWorldMatrix
    let inInv = inGrid.worldToIndexMatrix
    let nx = grid.size.x, ny = grid.size.y, nz = grid.size.z
    let inN = SIMD3<Double>(Double(inGrid.size.x), Double(inGrid.size.y), Double(inGrid.size.z))
    input.withUnsafeBufferPointer { src in
        out.withUnsafeMutableBufferPointer { dst in
            let dstBase = dst.baseAddress!
            parallelForEach(count: nz) { z in
                for y in 0..<ny {
                    for x in 0..<nx {
                        // Same operation order as ITK: physical point first, then continuous index.
                        let xi = Double(x), yi = Double(y), zi = Double(z)
                        let p = SIMD3(outM[0] * xi + outM[1] * yi + outM[2] * zi,
                                      outM[3] * xi + outM[4] * yi + outM[5] * zi,
                                      outM[6] * xi + outM[7] * yi + outM[8] * zi) + grid.origin - inGrid.origin
                        let c = SIMD3(inInv[0] * p.x + inInv[1] * p.y + inInv[2] * p.z,
                                      inInv[3] * p.x + inInv[4] * p.y + inInv[5] * p.z,
                                      inInv[6] * p.x + inInv[7] * p.y + inInv[8] * p.z)
                        if !(c.x >= -0.5 && c.y >= -0.5 && c.z >= -0.5 && c.x < inN.x - 0.5 && c.y < inN.y - 0.5
                            && c.z < inN.z - 0.5) { continue }
                        dstBase[x + nx * (y + ny * z)] = sample(src, c)
                    }
                }
            }
        }
    }
    return out
}
