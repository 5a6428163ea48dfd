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

    /// Copies the patch at `origin` out of `source` (an image of `size`, x fastest) into `destination`
    /// (P^3, x fastest), with `fill` outside the image.
    func extract(_ source: UnsafePointer<Float>, origin: SIMD3<Int>, fill: Float,
                 into destination: UnsafeMutablePointer<Float>) {
        extractRows(origin: origin, fill: fill, into: destination) { row, start, count in
            row.update(from: source + start, count: count)
        }
    }

    /// As `extract`, from a 0/1 mask.
    func extract(_ source: UnsafePointer<UInt8>, origin: SIMD3<Int>, fill: Float,
                 into destination: UnsafeMutablePointer<Float>) {
        extractRows(origin: origin, fill: fill, into: destination) { row, start, count in
            for i in 0..<count { row[i] = Float(source[start + i]) }
        }
    }

    /// Fills the parts of each patch row outside the image and lets `copy(row, imageIndex, count)` fill
    /// the run inside it.
    @inline(__always)
    private func extractRows(origin o: SIMD3<Int>, fill: Float, into destination: UnsafeMutablePointer<Float>,
                             copy: (UnsafeMutablePointer<Float>, Int, Int) -> Void) {
        let p = patch, nx = size.x, ny = size.y, nz = size.z
        let x0 = max(0, -o.x), x1 = min(p, nx - o.x)
        for pz in 0..<p {
            let z = o.z + pz
            for py in 0..<p {
                let y = o.y + py
                let row = destination + p * (py + p * pz)
                guard z >= 0, z < nz, y >= 0, y < ny, x1 > x0 else {
                    row.update(repeating: fill, count: p)
                    continue
                }
                if x0 > 0 { row.update(repeating: fill, count: x0) }
                copy(row + x0, o.x + x0 + nx * (y + ny * z), x1 - x0)
                if x1 < p { (row + x1).update(repeating: fill, count: p - x1) }
            }
        }
    }

    /// The voxels of the patch at `origin` inside the image whose probability exceeds 0.5, as linear image
    /// indices, with their mean position (continuous image index).
    func fragment(_ probabilities: UnsafePointer<Float>, origin o: SIMD3<Int>, completeness: Double) -> Fragment {
        let p = patch, nx = size.x, ny = size.y, nz = size.z
        let x0 = max(0, -o.x), x1 = min(p, nx - o.x)
        let y0 = max(0, -o.y), y1 = min(p, ny - o.y)
        let z0 = max(0, -o.z), z1 = min(p, nz - o.z)
        var indices: [Int] = []
        var sum = SIMD3<Double>()
        if x1 > x0 {
            for pz in z0..<max(z0, z1) {
                let z = o.z + pz
                for py in y0..<max(y0, y1) {
                    let y = o.y + py
                    let row = probabilities + p * (py + p * pz)
                    let base = nx * (y + ny * z) + o.x
                    var rowCount = 0, rowX = 0
                    for px in x0..<x1 where row[px] > 0.5 {
                        indices.append(base + px)
                        rowCount += 1
                        rowX += o.x + px
                    }
                    if rowCount > 0 {
                        sum += SIMD3(Double(rowX), Double(rowCount * y), Double(rowCount * z))
                    }
                }
            }
        }
        let centroid = indices.isEmpty ? SIMD3<Double>() : sum / Double(indices.count)
        return Fragment(indices: indices, centroid: centroid, completeness: completeness, origin: o)
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
