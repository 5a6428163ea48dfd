import XCTest
@testable import IFCNVolume

final class ResampleTests: XCTestCase {
    private func fixtureGrid() throws -> Grid {
        let fx = try TestSupport.json("resample.json")
        let size = try XCTUnwrap(fx["size"] as? [Int])
        let origin = try XCTUnwrap(fx["origin"] as? [Double])
        let spacing = try XCTUnwrap(fx["spacing"] as? Double)
        return Grid.canonical(size: SIMD3(size[0], size[1], size[2]), spacing: SIMD3(repeating: spacing),
                              origin: SIMD3(origin[0], origin[1], origin[2]))
    }

    /// Nearest-neighbour resampling of an oblique, anisotropic, permuted label map agrees voxel for voxel with
    /// SimpleITK (sitk.Resample, sitkNearestNeighbor) on the same canonical grid, and our canonical grid is that grid.
    func testNearestMatchesSimpleITK() throws {
        let input = try VolumeIO.read(TestSupport.fixture("resample_in_label.nii.gz"))
        let expected = try VolumeIO.read(TestSupport.fixture("resample_out_label.nii.gz"))
        let grid = try fixtureGrid()
        TestSupport.assertGrid(try canonicalGrid(covering: input.grid, spacing: 1), grid, accuracy: 1e-6)
        let ours = resample(input, onto: grid, interpolation: .nearest, fill: 0)
        XCTAssertEqual(Set(expected.voxels).count, 6, "fixture should hold 5 labels and background")
        var mismatches = 0
        for i in 0..<ours.voxels.count where ours.voxels[i] != expected.voxels[i] { mismatches += 1 }
        XCTAssertEqual(mismatches, 0)
        let canon = try resampleToCanonical(input, spacing: 1, interpolation: .nearest, fill: 0)
        XCTAssertEqual(canon.voxels, ours.voxels)
    }

    /// Trilinear resampling agrees with SimpleITK's sitkLinear (fill -1000 outside).
    func testLinearMatchesSimpleITK() throws {
        let input = try VolumeIO.read(TestSupport.fixture("resample_in_image.nii.gz"))
        let expected = try VolumeIO.read(TestSupport.fixture("resample_out_image.nii.gz"))
        let ours = resample(input, onto: try fixtureGrid(), interpolation: .linear, fill: -1000)
        var worst: Float = 0
        var outside = 0
        for i in 0..<ours.voxels.count {
            worst = max(worst, abs(ours.voxels[i] - expected.voxels[i]))
            if expected.voxels[i] == -1000 { outside += 1 }
        }
        XCTAssertGreaterThan(outside, 0)
        XCTAssertLessThan(outside, ours.voxels.count)
        XCTAssertLessThan(worst, 1e-3)
    }

    /// Identity resampling reproduces the input; world/continuousIndex are inverse.
    func testIdentityAndInverse() throws {
        let grid = TestSupport.obliqueGrid
        let v = Volume(grid: grid, voxels: TestSupport.pattern(grid))
        XCTAssertEqual(resample(v, onto: grid, interpolation: .nearest, fill: -1).voxels, v.voxels)
        let linear = resample(v, onto: grid, interpolation: .linear, fill: -1).voxels
        for (a, b) in zip(linear, v.voxels) { XCTAssertEqual(a, b, accuracy: 1e-4) }
        let i = SIMD3(1.25, -3.5, 7.0)
        let back = grid.continuousIndex(grid.world(i))
        for k in 0..<3 { XCTAssertEqual(back[k], i[k], accuracy: 1e-12) }
        // The canonical grid covers the input's voxel centres and is axis-aligned.
        let c = try canonicalGrid(covering: grid, spacing: 0.5)
        XCTAssertEqual(c.direction, Grid.identity)
        for corner in [SIMD3<Double>(0, 0, 0), SIMD3(6, 4, 3), SIMD3(6, 0, 3), SIMD3(0, 4, 0)] {
            let ci = c.continuousIndex(grid.world(corner))
            for k in 0..<3 {
                XCTAssertGreaterThanOrEqual(ci[k], -1e-6)
                XCTAssertLessThanOrEqual(ci[k], Double(c.size[k]) - 0.5)
            }
        }
    }
}
