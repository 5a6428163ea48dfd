import XCTest
@testable import IFCNEvaluation
import IFCNSupport
import IFCNVolume

final class DistanceTransformTests: XCTestCase {
    /// Exact anisotropic EDT against scipy.ndimage.distance_transform_edt on a sparse random feature set.
    func testMatchesScipyOnAnisotropicGrid() throws {
        let e = try XCTUnwrap(try Fixtures.expected()["edt"] as? [String: Any])
        let size = try Fixtures.size(e["size"]), spacing = try Fixtures.spacing(e["spacing"])
        let features = try Fixtures.bytes("edt_features.u8").map { $0 != 0 }
        let expected = try Fixtures.float64("edt_expected.f64")
        XCTAssertEqual(features.count, size.x * size.y * size.z)
        let squared = squaredDistanceTransform(features: features, size: size, spacing: spacing)
        for i in 0..<expected.count {
            XCTAssertEqual(squared[i].squareRoot(), expected[i], accuracy: 1e-12 * Swift.max(1, expected[i]), "voxel \(i)")
        }
    }

    /// Brute force over all feature pairs, on a grid large enough to take the parallel path (>= 2^16 voxels).
    func testMatchesBruteForceOnLargeGrid() {
        let size = SIMD3(48, 40, 36), spacing = SIMD3(0.7, 1.3, 3.0)
        var generator = SplitMix64(seed: 7)
        var features = [Bool](repeating: false, count: size.x * size.y * size.z)
        var points: [SIMD3<Int>] = []
        for _ in 0..<25 {
            let p = SIMD3(Int(generator.next() % UInt64(size.x)), Int(generator.next() % UInt64(size.y)),
                          Int(generator.next() % UInt64(size.z)))
            features[p.x + size.x * (p.y + size.y * p.z)] = true
            points.append(p)
        }
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

    func testNoFeaturesGivesInfinity() {
        let d = squaredDistanceTransform(features: [Bool](repeating: false, count: 12), size: SIMD3(3, 2, 2),
                                         spacing: SIMD3(1, 1, 1))
        XCTAssertTrue(d.allSatisfy { $0 == .infinity })
    }

    func testSingleLineHandValues() {
        // Features at x = 0 and x = 5 on a 7-voxel line with 2 mm spacing.
        var features = [Bool](repeating: false, count: 7)
        features[0] = true
        features[5] = true
        let d = squaredDistanceTransform(features: features, size: SIMD3(7, 1, 1), spacing: SIMD3(2, 1, 1))
        XCTAssertEqual(d, [0, 4, 16, 16, 4, 0, 4])
    }
}
