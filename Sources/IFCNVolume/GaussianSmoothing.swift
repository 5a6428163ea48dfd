import Foundation
import IFCNSupport

/// What an image goes through before it is resampled onto a grid coarser than its own (docs/ACCURACY.md,
/// "Anti-aliased resampling").
public enum DownsamplingFilter: String, Codable, Sendable, CaseIterable {
    /// Gaussian smoothing along each of the image's own axes, to a resolution (full width at half maximum) of
    /// the output spacing, less what the image's voxels already average: the resampled image has the same
    /// resolution and noise level whatever the scan's own spacing (1 mm, or 3 mm slices).
    case gaussian
    /// No filter: trilinear interpolation samples the image at the output points, so a 1 mm scan brought to
    /// 4 mm keeps 1 mm noise and aliasing, and a thick-slice scan looks different from a thin-slice one.
    case none
}

/// Normalised Gaussian weights of radius 3 sigma (at least 1); sigma in voxels.
public func gaussianKernel(sigma: Double) -> [Float] {
    let r = max(1, Int((3 * sigma).rounded(.up)))
    let k = (-r...r).map { Float(exp(-Double($0 * $0) / (2 * sigma * sigma))) }
    let s = k.reduce(0, +)
    return k.map { $0 / s }
}

/// Separable Gaussian smoothing of voxels laid out `x + nx * (y + ny * z)`: axis by axis (x, y, z), sigma in
/// voxels per axis (an axis with sigma 0 is left alone), kernel radius 3 sigma, borders clamped. `parallel`
/// spreads each axis's lines over the worker pool; a caller on a background thread (the training sampler)
/// passes false so that it does not compete with the training step for the pool.
public func gaussianSmoothed(_ voxels: [Float], size: SIMD3<Int>, sigma: SIMD3<Double>, parallel: Bool = true) -> [Float] {
    precondition(voxels.count == size.x * size.y * size.z, "voxel count does not match the size")
    var a = voxels, b = voxels
    let strides = [1, size.x, size.x * size.y]
    for axis in 0..<3 where sigma[axis] > 0 {
        let k = gaussianKernel(sigma: sigma[axis])
        let st = strides[axis], n = size[axis]
        a.withUnsafeBufferPointer { src in
            b.withUnsafeMutableBufferPointer { dst in
                let s = src.baseAddress!, d = dst.baseAddress!
                // Voxel i sits at position (i / st) % n along the axis; its neighbours are st apart.
                func run(_ range: Range<Int>) {
                    k.withUnsafeBufferPointer { kw in
                        let r = kw.count / 2
                        for i in range {
                            let pos = (i / st) % n
                            var acc: Float = 0
                            for j in -r...r {
                                let q = min(max(pos + j, 0), n - 1)
                                acc += kw[j + r] * s[i + (q - pos) * st]
                            }
                            d[i] = acc
                        }
                    }
                }
                if parallel {
                    parallelChunks(count: src.count, parts: chunkCount(for: src.count, minimumChunk: 1 << 14), run)
                } else {
                    run(0..<src.count)
                }
            }
        }
        swap(&a, &b)
    }
    return a
}

extension Volume {
    /// The image smoothed for resampling at `resolution` mm (`DownsamplingFilter.gaussian`): along each of its
    /// own axes with spacing s < resolution, a Gaussian of full width at half maximum sqrt(resolution^2 - s^2)
    /// (a voxel of width s already averages over about s), so that every scan ends at the same resolution.
    /// Axes at least as coarse as `resolution` are left alone (upsampling needs no filter).
    public func smoothed(toResolution resolution: Double) -> Volume {
        let fwhmPerSigma = 2 * (2 * log(2.0)).squareRoot()
        var sigma = SIMD3<Double>(repeating: 0)
        for a in 0..<3 {
            let s = grid.spacing[a]
            let fwhm = (max(0, resolution * resolution - s * s)).squareRoot()
            // Below a fifth of a voxel the kernel's side weights vanish in float32 rounding; skip the pass.
            let sigmaVoxels = fwhm / fwhmPerSigma / s
            sigma[a] = sigmaVoxels >= 0.2 ? sigmaVoxels : 0
        }
        if sigma == SIMD3(repeating: 0) { return self }
        return Volume(grid: grid, voxels: gaussianSmoothed(voxels, size: grid.size, sigma: sigma))
    }
}
