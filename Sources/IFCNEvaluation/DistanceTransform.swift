import Foundation

/// Exact squared Euclidean distance, in mm², from every voxel to the nearest feature voxel, with anisotropic
/// `spacing` (mm per voxel along x, y, z). Voxels get `.infinity` when there is no feature voxel at all.
/// Separable lower-envelope-of-parabolas algorithm (Felzenszwalb & Huttenlocher), one axis after the other;
/// lines run in parallel on large grids. Index `x + nx * (y + ny * z)`.
public func squaredDistanceTransform(features: [Bool], size: SIMD3<Int>, spacing: SIMD3<Double>) -> [Double] {
    let count = size.x * size.y * size.z
    precondition(features.count == count, "squaredDistanceTransform: \(features.count) voxels for size \(size)")
    var distance = features.map { $0 ? 0.0 : Double.infinity }
    guard count > 0 else { return distance }
    distance.withUnsafeMutableBufferPointer { d in
        for axis in 0..<3 {
            transformLines(d, size: size, axis: axis, step: spacing[axis])
        }
    }
    return distance
}

/// Replaces every line along `axis` of `d` by its 1-D squared distance transform with voxel length `step`.
private func transformLines(_ d: UnsafeMutableBufferPointer<Double>, size: SIMD3<Int>, axis: Int, step: Double) {
    let n = size[axis]
    let lines = d.count / n
    let stride = axis == 0 ? 1 : axis == 1 ? size.x : size.x * size.y
    // Start index of line `l`: lines are numbered over the two other axes, the lower one fastest.
    func start(_ l: Int) -> Int {
        switch axis {
        case 0: return l * size.x
        case 1: return (l % size.x) + (l / size.x) * size.x * size.y
        default: return l
        }
    }
    let chunks = d.count >= 1 << 16 ? Swift.min(lines, coreCount * 4) : 1
    parallelFor(chunks) { chunk in
        let f = UnsafeMutablePointer<Double>.allocate(capacity: n)
        let vertices = UnsafeMutablePointer<Int>.allocate(capacity: n)
        let bounds = UnsafeMutablePointer<Double>.allocate(capacity: n + 1)
        defer { f.deallocate(); vertices.deallocate(); bounds.deallocate() }
        for l in (chunk * lines / chunks)..<((chunk + 1) * lines / chunks) {
            let base = start(l)
            for i in 0..<n { f[i] = d[base + i * stride] }
            lowerEnvelope(f, n: n, step: step, vertices: vertices, bounds: bounds) { i, value in
                d[base + i * stride] = value
            }
        }
    }
}

/// 1-D squared distance transform of the sampled function `f` (`.infinity` = no site) on points `i * step`:
/// calls `write(i, min_q (f[q] + ((i - q) * step)²))` for every `i`, in order.
@inline(__always)
private func lowerEnvelope(_ f: UnsafeMutablePointer<Double>, n: Int, step: Double,
                           vertices v: UnsafeMutablePointer<Int>, bounds z: UnsafeMutablePointer<Double>,
                           write: (Int, Double) -> Void) {
    // Parabola of site q and parabola of site p (p < q) meet at this position (in mm from point 0).
    @inline(__always) func intersection(_ q: Int, _ p: Int) -> Double {
        let xq = Double(q) * step, xp = Double(p) * step
        return ((f[q] + xq * xq) - (f[p] + xp * xp)) / (2 * (xq - xp))
    }
    var k = -1
    for q in 0..<n where f[q] != .infinity {
        if k < 0 {
            k = 0
            v[0] = q
            z[0] = -.infinity
            z[1] = .infinity
            continue
        }
        var s = intersection(q, v[k])
        while s <= z[k] {
            k -= 1
            s = intersection(q, v[k])
        }
        k += 1
        v[k] = q
        z[k] = s
        z[k + 1] = .infinity
    }
    guard k >= 0 else {
        for i in 0..<n { write(i, .infinity) }
        return
    }
    k = 0
    for i in 0..<n {
        let x = Double(i) * step
        while z[k + 1] < x { k += 1 }
        let dx = Double(i - v[k]) * step
        write(i, dx * dx + f[v[k]])
    }
}
