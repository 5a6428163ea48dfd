import Foundation
import IFCNSupport
import IFCNVolume

/// How `segmentScan` brings the instance labels from the model's working grid back onto the scan's grid.
public enum LabelResampling: String, CaseIterable, Sendable {
    /// Each instance's probabilities, trilinear onto the scan's grid; every voxel goes to the most probable
    /// instance above 0.5 (as nnU-Net resamples its softmax outputs). No staircases of the working spacing.
    case probability
    /// The working grid's labels, nearest neighbour (voxel blocks of the working spacing).
    case nearest
}

/// The network's probabilities of one accepted instance: the P^3 patch it was accepted from, quantised
/// to 8 bits (q = round(255 p); the 0.5 threshold is q > 127.5), with the box of canonical voxels in which
/// an interpolated probability can exceed 0.5.
struct InstanceProbability: Sendable {
    /// First voxel of the patch (canonical index; may be negative).
    let origin: SIMD3<Int>
    let patch: Int
    /// P^3 values, x fastest.
    let values: [UInt8]
    /// Canonical voxels with q > 127 grown by one voxel: the only cells where trilinear interpolation can
    /// exceed 0.5. Empty when lo > hi on some axis.
    let lo: SIMD3<Int>, hi: SIMD3<Int>

    static let threshold: Float = 127.5

    init(_ p: UnsafePointer<Float>, origin: SIMD3<Int>, patch: Int) {
        let n = patch * patch * patch
        var values = [UInt8](repeating: 0, count: n)
        var lo = SIMD3<Int>(repeating: .max), hi = SIMD3<Int>(repeating: .min)
        for i in 0..<n {
            let q = UInt8((min(max(p[i], 0), 1) * 255).rounded())
            values[i] = q
            guard q > 127 else { continue }
            let v = origin &+ SIMD3(i % patch, (i / patch) % patch, i / (patch * patch))
            lo = pointwiseMin(lo, v)
            hi = pointwiseMax(hi, v)
        }
        self.origin = origin
        self.patch = patch
        self.values = values
        let empty = hi == SIMD3(repeating: .min)
        self.lo = empty ? SIMD3(repeating: 0) : lo &- 1
        self.hi = empty ? SIMD3(repeating: -1) : hi &+ 1
    }

    /// Trilinear value (in q units) at canonical continuous index `c`, with neighbours clamped to the patch.
    @inline(__always)
    func value(at c: SIMD3<Double>) -> Float {
        let l = c - SIMD3<Double>(Double(origin.x), Double(origin.y), Double(origin.z))
        let m = Double(patch - 1)
        let x = min(max(l.x, 0), m), y = min(max(l.y, 0), m), z = min(max(l.z, 0), m)
        let x0 = Int(x), y0 = Int(y), z0 = Int(z)
        let x1 = min(x0 + 1, patch - 1), y1 = min(y0 + 1, patch - 1), z1 = min(z0 + 1, patch - 1)
        let t = SIMD3(x - Double(x0), y - Double(y0), z - Double(z0))
        let p = patch, pp = patch * patch
        return values.withUnsafeBufferPointer { v in
            Float(trilinear(t, x: (x0, x1), y: (y0, y1), z: (z0, z1)) { i, j, k in Double(v[i + p * j + pp * k]) })
        }
    }
}

/// Labels on `grid` from instance probabilities on the canonical grid `canonical`: each voxel of `grid` takes
/// the label of the instance with the highest trilinear probability above 0.5 at its position (ties: the
/// earlier instance), 0 where none. `instances` pairs each output label with its probabilities.
func labels(from instances: [(label: Int32, probability: InstanceProbability)], canonical: Grid,
            onto grid: Grid) -> LabelVolume {
    var out = LabelVolume(grid: grid)
    var best = [Float](repeating: 0, count: grid.count)
    let toWorld = grid.indexToWorldMatrix, toCanonical = canonical.worldToIndexMatrix
    let shift = grid.origin - canonical.origin
    // Output index -> canonical continuous index is affine: c = A i + b.
    var product = [Double](repeating: 0, count: 9)
    for r in 0..<3 { for k in 0..<3 { for j in 0..<3 { product[r * 3 + k] += toCanonical[r * 3 + j] * toWorld[j * 3 + k] } } }
    let a = product
    let b = SIMD3(toCanonical[0] * shift.x + toCanonical[1] * shift.y + toCanonical[2] * shift.z,
                  toCanonical[3] * shift.x + toCanonical[4] * shift.y + toCanonical[5] * shift.z,
                  toCanonical[6] * shift.x + toCanonical[7] * shift.y + toCanonical[8] * shift.z)
    let inverse = grid.worldToIndexMatrix, canonicalToWorld = canonical.indexToWorldMatrix
    let n = grid.size, nx = n.x, nxy = n.x * n.y
    for (label, p) in instances where p.lo.x <= p.hi.x && p.lo.y <= p.hi.y && p.lo.z <= p.hi.z {
        // The output voxels whose positions can fall in the instance's box: the box's corners mapped back.
        var lo = SIMD3<Double>(repeating: .infinity), hi = SIMD3<Double>(repeating: -.infinity)
        for corner in 0..<8 {
            let ci = SIMD3<Double>(Double(corner & 1 == 0 ? p.lo.x : p.hi.x), Double(corner & 2 == 0 ? p.lo.y : p.hi.y),
                                   Double(corner & 4 == 0 ? p.lo.z : p.hi.z))
            let w = SIMD3(canonicalToWorld[0] * ci.x + canonicalToWorld[1] * ci.y + canonicalToWorld[2] * ci.z,
                          canonicalToWorld[3] * ci.x + canonicalToWorld[4] * ci.y + canonicalToWorld[5] * ci.z,
                          canonicalToWorld[6] * ci.x + canonicalToWorld[7] * ci.y + canonicalToWorld[8] * ci.z)
                + canonical.origin - grid.origin
            let o = SIMD3(inverse[0] * w.x + inverse[1] * w.y + inverse[2] * w.z,
                          inverse[3] * w.x + inverse[4] * w.y + inverse[5] * w.z,
                          inverse[6] * w.x + inverse[7] * w.y + inverse[8] * w.z)
            lo = pointwiseMin(lo, o)
            hi = pointwiseMax(hi, o)
        }
        let x0 = max(0, Int(lo.x.rounded(.down))), x1 = min(n.x - 1, Int(hi.x.rounded(.up)))
        let y0 = max(0, Int(lo.y.rounded(.down))), y1 = min(n.y - 1, Int(hi.y.rounded(.up)))
        let z0 = max(0, Int(lo.z.rounded(.down))), z1 = min(n.z - 1, Int(hi.z.rounded(.up)))
        guard x0 <= x1, y0 <= y1, z0 <= z1 else { continue }
        let boxLo = SIMD3<Double>(Double(p.lo.x), Double(p.lo.y), Double(p.lo.z))
        let boxHi = SIMD3<Double>(Double(p.hi.x), Double(p.hi.y), Double(p.hi.z))
        best.withUnsafeMutableBufferPointer { bestBuffer in
            out.voxels.withUnsafeMutableBufferPointer { labelBuffer in
                let bestBase = bestBuffer.baseAddress!, labelBase = labelBuffer.baseAddress!
                parallelForEach(count: z1 - z0 + 1) { dz in
                    let z = Double(z0 + dz)
                    for yi in y0...y1 {
                        let y = Double(yi)
                        for xi in x0...x1 {
                            let x = Double(xi)
                            let c = SIMD3(a[0] * x + a[1] * y + a[2] * z, a[3] * x + a[4] * y + a[5] * z,
                                          a[6] * x + a[7] * y + a[8] * z) + b
                            guard c.x >= boxLo.x, c.y >= boxLo.y, c.z >= boxLo.z,
                                  c.x <= boxHi.x, c.y <= boxHi.y, c.z <= boxHi.z else { continue }
                            let q = p.value(at: c)
                            let i = xi + nx * yi + nxy * (z0 + dz)
                            if q > InstanceProbability.threshold && q > bestBase[i] {
                                bestBase[i] = q
                                labelBase[i] = label
                            }
                        }
                    }
                }
            }
        }
    }
    return out
}
