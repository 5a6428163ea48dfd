import Foundation
import IFCNSupport

/// Exact Euclidean distance transform in mm: for each voxel, the distance to the nearest voxel where `mask`
/// is false (0 there), as scipy.ndimage.distance_transform_edt(mask, sampling=spacing). Voxels with no
/// false voxel anywhere get +infinity.
public func distanceTransform(mask: [Bool], size: SIMD3<Int>, spacing: SIMD3<Double>) -> [Float] {
    squaredDistanceTransform(features: mask.map { !$0 }, size: size, spacing: spacing).map { Float($0.squareRoot()) }
}

/// Squared Euclidean distance (mm^2, float64) from every voxel to the nearest `features` voxel; +infinity
/// when there is none. Separable squared-distance passes (Felzenszwalb & Huttenlocher) along x, y, z,
/// parallel over lines. Used for weight maps here and for surface distances in IFCNEvaluation.
public func squaredDistanceTransform(features: [Bool], size: SIMD3<Int>, spacing: SIMD3<Double>) -> [Double] {
    let nx = size.x, ny = size.y, nz = size.z
    let count = nx * ny * nz
    precondition(features.count == count, "mask size does not match")
    var sq = [Double](repeating: 0, count: count)
    sq.withUnsafeMutableBufferPointer { buf in
        let base = buf.baseAddress!
        features.withUnsafeBufferPointer { m in
            for i in 0..<count { base[i] = m[i] ? 0 : .infinity }
        }
        // Pass along x (stride 1), then y (stride nx), then z (stride nx*ny).
        squaredDistancePass(base, lines: ny * nz, length: nx, stride: 1, spacing: spacing.x) { line in
            line * nx
        }
        squaredDistancePass(base, lines: nx * nz, length: ny, stride: nx, spacing: spacing.y) { line in
            (line % nx) + (line / nx) * nx * ny
        }
        squaredDistancePass(base, lines: nx * ny, length: nz, stride: nx * ny, spacing: spacing.z) { line in
            line
        }
    }
    return sq
}

/// One separable pass: replaces f along each line by min_q (f(q) + ((p - q) * spacing)^2).
private func squaredDistancePass(_ data: UnsafeMutablePointer<Double>, lines: Int, length n: Int, stride: Int,
                                 spacing: Double, start: (Int) -> Int) {
    guard n > 0, lines > 0 else { return }
    parallelChunks(count: lines, parts: chunkCount(for: lines)) { range in
        let f = UnsafeMutablePointer<Double>.allocate(capacity: n)
        let v = UnsafeMutablePointer<Int>.allocate(capacity: n)
        let z = UnsafeMutablePointer<Double>.allocate(capacity: n + 1)
        defer { f.deallocate(); v.deallocate(); z.deallocate() }
        for line in range {
            let s = start(line)
            for i in 0..<n { f[i] = data[s + i * stride] }
            // Lower envelope of the parabolas rooted at finite samples.
            var k = -1
            for q in 0..<n where f[q].isFinite {
                let pq = Double(q) * spacing
                if k < 0 {
                    k = 0; v[0] = q; z[0] = -.infinity; z[1] = .infinity
                    continue
                }
                var sIntersect = 0.0
                while k >= 0 {
                    let pv = Double(v[k]) * spacing
                    sIntersect = ((f[q] + pq * pq) - (f[v[k]] + pv * pv)) / (2 * (pq - pv))
                    if sIntersect <= z[k] { k -= 1 } else { break }
                }
                if k < 0 {
                    k = 0; v[0] = q; z[0] = -.infinity
                } else {
                    k += 1; v[k] = q; z[k] = sIntersect
                }
                z[k + 1] = .infinity
            }
            if k < 0 { continue }  // no finite sample: the line stays infinite
            var j = 0
            for q in 0..<n {
                let x = Double(q) * spacing
                while z[j + 1] < x { j += 1 }
                let dx = x - Double(v[j]) * spacing
                data[s + q * stride] = dx * dx + f[v[j]]
            }
        }
    }
}

/// The weight map of docs/METHOD.md: with B = (label > 0), d = edt(B) + edt(!B) (mm), w = 1 + 8 exp(-d^2 / 36).
public func distanceWeights(labels: LabelVolume) -> Volume {
    let fg = labels.voxels.map { $0 > 0 }
    let bg = fg.map { !$0 }
    let g = labels.grid
    let inside = distanceTransform(mask: fg, size: g.size, spacing: g.spacing)
    let outside = distanceTransform(mask: bg, size: g.size, spacing: g.spacing)
    var w = [Float](repeating: 1, count: g.count)
    for i in 0..<g.count {
        let d = Double(inside[i]) + Double(outside[i])
        w[i] = d.isFinite ? Float(1 + 8 * exp(-d * d / 36)) : 1
    }
    return Volume(grid: g, voxels: w)
}
