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
}

/// What the model found in one patch: its voxels inside the image above 0.5 (number and mean position), the
/// completeness, and the input it came from (patch origin and the memory's hash under it).
struct Fragment {
    var count: Int
    /// Mean continuous image index of those voxels.
    var centroid: SIMD3<Double>
    var completeness: Double
    /// First voxel of the patch it was seen in.
    var origin: SIMD3<Int>
    var memoryHash: UInt64
}
