import IFCNCompute
import IFCNSupport

/// Patch placement over a canonical image of `size` voxels for patches of `patch`^3 voxels.
///
/// A patch is addressed by its centre voxel; it covers `centre - P/2 ..< centre + P/2` on each axis.
/// As in training (docs/METHOD.md), a patch lies inside the image on every axis where the image is at
/// least a patch long, and is centred on the image (padded) where it is shorter; centres are clamped
/// to keep it so. The network never sees patches that hang out of a large image.
struct PatchGrid {
    let size: SIMD3<Int>
    let patch: Int

    /// Centres along one axis of `n` voxels: patches from the start with step P/2, plus one flush with
    /// the end; a single centred patch when the axis is no longer than a patch.
    static func centres(along n: Int, patch p: Int) -> [Int] {
        if n <= p { return [centredCentre(n, p)] }
        var starts = Array(stride(from: 0, through: n - p, by: p / 2))
        if starts.last != n - p { starts.append(n - p) }
        return starts.map { $0 + p / 2 }
    }

    /// The grid walk: z from the superior end (high index) downwards, then y, then x.
    var walk: [SIMD3<Int>] {
        let xs = PatchGrid.centres(along: size.x, patch: patch)
        let ys = PatchGrid.centres(along: size.y, patch: patch)
        let zs = PatchGrid.centres(along: size.z, patch: patch).reversed()
        var positions: [SIMD3<Int>] = []
        positions.reserveCapacity(xs.count * ys.count * zs.count)
        for z in zs {
            for y in ys {
                for x in xs { positions.append(SIMD3(x, y, z)) }
            }
        }
        return positions
    }

    /// Centre of the one patch along an axis of `n` <= `p` voxels: the image sits in its middle
    /// (origin -(p - n) / 2, as the training sampler places it).
    static func centredCentre(_ n: Int, _ p: Int) -> Int { p / 2 - (p - n) / 2 }

    /// The nearest allowed centre to a continuous position: the patch inside the image, or centred on
    /// an axis shorter than the patch.
    func clampedCentre(_ p: SIMD3<Double>) -> SIMD3<Int> {
        var c = SIMD3<Int>()
        for a in 0..<3 {
            if size[a] <= patch {
                c[a] = PatchGrid.centredCentre(size[a], patch)
                continue
            }
            let v = p[a].isFinite ? p[a].rounded() : 0
            c[a] = Int(min(max(v, Double(patch / 2)), Double(size[a] - patch + patch / 2)))
        }
        return c
    }

    /// First voxel of the patch centred at `centre`.
    func origin(of centre: SIMD3<Int>) -> SIMD3<Int> { centre &- patch / 2 }

    /// The voxels of the patch at `origin` inside the image whose bit is set in `above` (the model's output
    /// above 0.5: bit i % 32 of word i / 32, patch index i), as linear image indices, with their mean position
    /// (continuous image index).
    func fragment(_ above: UnsafePointer<UInt32>, origin o: SIMD3<Int>, completeness: Double) -> Fragment {
        var indices: [Int] = []
        var sum = SIMD3<Double>()
        let p = patch, nx = size.x, ny = size.y
        PatchBox(scan: size, origin: o, side: p).forEachRow(inside: { at, index, count in
            var rowCount = 0, rowX = 0
            let x = index % nx
            var k = 0
            while k < count {
                let i = at + k
                let word = above[i >> 5]
                if word == 0 {  // skip to the next word
                    k += 32 - (i & 31)
                    continue
                }
                if word & (1 << UInt32(i & 31)) != 0 {
                    indices.append(index + k)
                    rowCount += 1
                    rowX += x + k
                }
                k += 1
            }
            if rowCount > 0 {
                let y = (index / nx) % ny, z = index / (nx * ny)
                sum += SIMD3(Double(rowX), Double(rowCount * y), Double(rowCount * z))
            }
        }, outside: { _, _ in })
        let centroid = indices.isEmpty ? SIMD3<Double>() : sum / Double(indices.count)
        return Fragment(indices: indices, centroid: centroid, completeness: completeness, origin: o)
    }

    /// 64-bit hash of the patch positions of the set voxels of `mask` (a 0/1 image of `size`) in the patch at `origin`.
    func hash(_ mask: UnsafePointer<UInt8>, origin: SIMD3<Int>) -> UInt64 {
        var h = SplitMix64.golden
        PatchBox(scan: size, origin: origin, side: patch).forEachRow(inside: { at, index, count in
            for k in 0..<count where mask[index + k] != 0 { h = mix64(h ^ UInt64(at + k)) }
        }, outside: { _, _ in })
        return h
    }
}

/// A thresholded network output: its voxels inside the image, their centroid, the completeness.
struct Fragment {
    /// Linear image indices (x fastest) of voxels with probability > 0.5.
    var indices: [Int]
    /// Mean continuous image index of those voxels.
    var centroid: SIMD3<Double>
    var completeness: Double
    /// First voxel of the patch it was seen in.
    var origin: SIMD3<Int>
    var count: Int { indices.count }
}
