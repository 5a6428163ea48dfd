import XCTest
import IFCNSupport
@testable import IFCNVolume

/// Anti-aliased resampling (issue 12, docs/ACCURACY.md "Anti-aliased resampling").
final class DownsamplingTests: XCTestCase {
    /// A 96 mm cube of 1 mm voxels: a ball of 400 HU (radius 30 mm) in 0 HU, with white noise of 40 HU.
    private func thinSliceScan(noise: Bool) -> Volume {
        let n = 96
        let grid = Grid.canonical(size: SIMD3(repeating: n), spacing: SIMD3(repeating: 1), origin: .zero)
        var rng = SplitMix64(seed: 7)
        var voxels = [Float](repeating: 0, count: n * n * n)
        for z in 0..<n { for y in 0..<n { for x in 0..<n {
            let d = SIMD3(Double(x), Double(y), Double(z)) - SIMD3(repeating: 47.5)
            let bone: Double = (d * d).sum() < 900 ? 400 : 0
            voxels[x + n * (y + n * z)] = Float(bone + (noise ? 40 * rng.gaussian() : 0))
        } } }
        return Volume(grid: grid, voxels: voxels)
    }

    /// The same scan as a scanner with 3 mm slices along x gives it: each slice the mean of 3 thin ones.
    private func thickSlices(_ v: Volume) -> Volume {
        let n = v.grid.size.x, m = n / 3
        var grid = v.grid
        grid.size.x = m
        grid.spacing.x = 3
        grid.origin.x += 1
        var voxels = [Float](repeating: 0, count: m * n * n)
        for z in 0..<n { for y in 0..<n { for x in 0..<m {
            let row = n * (y + n * z)
            voxels[x + m * (y + n * z)] = (v.voxels[row + 3 * x] + v.voxels[row + 3 * x + 1] + v.voxels[row + 3 * x + 2]) / 3
        } } }
        return Volume(grid: grid, voxels: voxels)
    }

    private func rms(_ a: [Float], _ b: [Float]) -> Double {
        (zip(a, b).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) } / Double(a.count)).squareRoot()
    }

    /// At 4 mm the thin-slice and the thick-slice scan of the same anatomy become nearly the same image with the
    /// Gaussian filter, and the 1 mm noise is averaged away as a 4 mm scanner would; without it trilinear sampling
    /// keeps most of the 1 mm noise and the two scans differ by about as much. (The preprocessing of sessions 1-6
    /// had no filter: a model trained on 1 mm scans at 4 mm saw other noise than on a 3 mm-slice scan.)
    func testGaussianDownsamplingMakesThinAndThickSliceScansAlike() {
        let thin = thinSliceScan(noise: true), thick = thickSlices(thin)
        let clean = thinSliceScan(noise: false)
        let target = Grid.canonical(size: SIMD3(repeating: 22), spacing: SIMD3(repeating: 4), origin: SIMD3(repeating: 6))
        func at4mm(_ v: Volume, _ f: DownsamplingFilter) -> [Float] {
            resample(v, onto: target, interpolation: .linear, fill: -1000, filter: f).voxels
        }
        let noiseNone = rms(at4mm(thin, .none), at4mm(clean, .none))
        let noiseGaussian = rms(at4mm(thin, .gaussian), at4mm(clean, .gaussian))
        XCTAssertGreaterThan(noiseNone, 25, "trilinear sampling keeps most of the 1 mm noise")
        XCTAssertLessThan(noiseGaussian, 5, "a 4 mm resolution averages 1 mm noise over about 64 voxels")
        let apartNone = rms(at4mm(thin, .none), at4mm(thick, .none))
        let apartGaussian = rms(at4mm(thin, .gaussian), at4mm(thick, .gaussian))
        XCTAssertLessThan(apartGaussian, apartNone / 4, "thin \(apartGaussian) HU apart with the filter, \(apartNone) without")
    }

    /// Upsampling needs no filter: onto a finer grid `.gaussian` is exactly `.none`; an axis already as coarse as
    /// the output is left alone while the finer ones are smoothed.
    func testGaussianLeavesCoarserAxesAlone() {
        let thin = thinSliceScan(noise: true)
        let fine = Grid.canonical(size: SIMD3(repeating: 40), spacing: SIMD3(repeating: 0.5), origin: SIMD3(repeating: 30))
        XCTAssertEqual(resample(thin, onto: fine, interpolation: .linear, fill: 0, filter: .gaussian).voxels,
                       resample(thin, onto: fine, interpolation: .linear, fill: 0, filter: .none).voxels)
        // A ramp along x, constant along y and z, with 4 mm voxels along x: smoothing y and z (1 mm) leaves it as
        // it is, and so must x, which is already at the resolution (smoothing it would bend the ramp at its ends).
        var ramp = thin
        ramp.grid.spacing.x = 4
        for i in ramp.voxels.indices { ramp.voxels[i] = Float(i % 96) }
        let smoothed = ramp.smoothed(toResolution: 4).voxels
        XCTAssertEqual(zip(smoothed, ramp.voxels).map { abs($0 - $1) }.max()!, 0, accuracy: 1e-3)
        // The same ramp with 1 mm voxels along x is smoothed along x: its first voxel moves up.
        var thinRamp = ramp
        thinRamp.grid.spacing.x = 1
        XCTAssertGreaterThan(thinRamp.smoothed(toResolution: 4).voxels[0], 0.3)
    }
}
