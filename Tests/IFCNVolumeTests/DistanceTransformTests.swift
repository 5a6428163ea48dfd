import XCTest
@testable import IFCNVolume

final class DistanceTransformTests: XCTestCase {
    /// Matches scipy.ndimage.distance_transform_edt(mask, sampling=spacing) on an anisotropic fixture.
    func testMatchesScipy() throws {
        let fx = try TestSupport.json("edt.json")
        let size = try XCTUnwrap(fx["size"] as? [Int])
        let spacing = try XCTUnwrap(fx["spacing"] as? [Double])
        let mask = try XCTUnwrap(fx["mask"] as? [Int]).map { $0 != 0 }
        let expected = try XCTUnwrap(fx["distance"] as? [Double])
        let d = distanceTransform(mask: mask, size: SIMD3(size[0], size[1], size[2]),
                                  spacing: SIMD3(spacing[0], spacing[1], spacing[2]))
        XCTAssertEqual(d.count, expected.count)
        XCTAssertGreaterThan(expected.max()!, 2)
        for i in 0..<d.count { XCTAssertEqual(Double(d[i]), expected[i], accuracy: 1e-5, "voxel \(i)") }
    }

    /// A single background voxel: every distance is the exact Euclidean norm in mm.
    func testSinglePointAnalytic() {
        let size = SIMD3(9, 7, 5), spacing = SIMD3(0.5, 1.5, 2.5)
        var mask = [Bool](repeating: true, count: 9 * 7 * 5)
        mask[4 + 9 * (3 + 7 * 2)] = false
        let d = distanceTransform(mask: mask, size: size, spacing: spacing)
        for z in 0..<5 { for y in 0..<7 { for x in 0..<9 {
            let e = SIMD3(Double(x - 4) * 0.5, Double(y - 3) * 1.5, Double(z - 2) * 2.5)
            XCTAssertEqual(Double(d[x + 9 * (y + 7 * z)]), (e * e).sum().squareRoot(), accuracy: 1e-5)
        } } }
        // No background anywhere: infinite.
        let none = distanceTransform(mask: [Bool](repeating: true, count: 8), size: SIMD3(2, 2, 2), spacing: SIMD3(1, 1, 1))
        XCTAssertTrue(none.allSatisfy { $0 == .infinity })
    }

    /// w = 1 + 8 exp(-d^2/36) with d = edt(B) + edt(!B), checked voxel by voxel against the scipy distances.
    func testWeights() throws {
        let fx = try TestSupport.json("edt.json")
        let size = try XCTUnwrap(fx["size"] as? [Int])
        let spacing = try XCTUnwrap(fx["spacing"] as? [Double])
        let mask = try XCTUnwrap(fx["mask"] as? [Int])
        let grid = Grid.canonical(size: SIMD3(size[0], size[1], size[2]), spacing: SIMD3(spacing[0], spacing[1], spacing[2]), origin: .zero)
        let labels = LabelVolume(grid: grid, voxels: mask.map { Int32($0 * 3) })
        let w = distanceWeights(labels: labels)
        let inside = try XCTUnwrap(fx["distance"] as? [Double])
        let outside = distanceTransform(mask: mask.map { $0 == 0 }, size: grid.size, spacing: grid.spacing)
        for i in 0..<grid.count {
            let d = inside[i] + Double(outside[i])
            XCTAssertEqual(Double(w.voxels[i]), 1 + 8 * exp(-d * d / 36), accuracy: 1e-5)
            XCTAssertTrue(w.voxels[i] >= 1 && w.voxels[i] <= 9)
        }
        // Next to the boundary along x (0.7 mm) the weight is close to 9.
        XCTAssertEqual(Double(w.voxels.max()!), 1 + 8 * exp(-0.49 / 36), accuracy: 1e-5)
    }

    /// Brute force over all feature pairs, on a grid large enough to take the parallel path (>= 2^16 voxels).
    func testSquaredDistancesMatchBruteForceOnLargeGrid() {
        let size = SIMD3(48, 40, 36), spacing = SIMD3(0.7, 1.3, 3.0)
        var features = [Bool](repeating: false, count: size.x * size.y * size.z)
        let points = (0..<25).map { i in SIMD3((i * 37 + 5) % size.x, (i * 53 + 11) % size.y, (i * 29 + 3) % size.z) }
        for p in points { features[p.x + size.x * (p.y + size.y * p.z)] = true }
        let squared = squaredDistanceTransform(features: features, size: size, spacing: spacing)
        for index in Swift.stride(from: 0, to: features.count, by: 97) {
            let v = SIMD3(index % size.x, (index / size.x) % size.y, index / (size.x * size.y))
            let best = points.map { p -> Double in
                let d = SIMD3<Double>(Double(p.x - v.x), Double(p.y - v.y), Double(p.z - v.z)) * spacing
                return (d * d).sum()
            }.min()!
            XCTAssertEqual(squared[index], best, accuracy: 1e-9, "voxel \(v)")
        }
    }

    func testSquaredDistancesOnALineByHand() {
        // Features at x = 0 and x = 5 on a 7-voxel line with 2 mm spacing.
        var features = [Bool](repeating: false, count: 7)
        features[0] = true
        features[5] = true
        XCTAssertEqual(squaredDistanceTransform(features: features, size: SIMD3(7, 1, 1), spacing: SIMD3(2, 1, 1)),
                       [0, 4, 16, 16, 4, 0, 4])
        let none = squaredDistanceTransform(features: [Bool](repeating: false, count: 12), size: SIMD3(3, 2, 2),
                                            spacing: SIMD3(1, 1, 1))
        XCTAssertTrue(none.allSatisfy { $0 == .infinity })
    }

}
