import XCTest
@testable import IFCNEvaluation

final class SurfaceDistanceTests: XCTestCase {
    let grid = SIMD3(10, 10, 10)
    let spacing = SIMD3(0.8, 1.0, 2.5)

    func testSurfaceOfCubeIsItsShell() {
        let cube = boxMask(grid, SIMD3(2, 2, 2), SIMD3(5, 5, 5))
        let shell = surface(of: cube, size: grid)
        XCTAssertEqual(shell.filter { $0 }.count, 64 - 8)
        XCTAssertFalse(shell[3 + 10 * (3 + 10 * 3)])  // interior voxel
        XCTAssertTrue(shell[2 + 10 * (3 + 10 * 3)])
    }

    func testVolumeBorderCountsAsOutside() {
        // A full 3x3x3 volume: only the centre voxel has all six neighbours inside the image and the mask.
        let full = [Bool](repeating: true, count: 27)
        let shell = surface(of: full, size: SIMD3(3, 3, 3))
        XCTAssertEqual(shell.filter { $0 }.count, 26)
        XCTAssertFalse(shell[13])
    }

    /// Surface voxels, Dice and ASSD of one fixture vertebra pair against scipy (medpy definitions).
    func testBinaryMasksMatchScipy() throws {
        let e = try XCTUnwrap(try Fixtures.expected()["binary"] as? [String: Any])
        let reference = try Fixtures.labelMap("case1", "reference"), prediction = try Fixtures.labelMap("case1", "prediction")
        let a = reference.labels.map { $0 == Int32(e["reference_label"] as! Int) }
        let b = prediction.labels.map { $0 == Int32(e["predicted_label"] as! Int) }
        let surfaceA = surface(of: a, size: reference.size)
        XCTAssertEqual(surfaceA.indices.filter { surfaceA[$0] }, try XCTUnwrap(e["surface_a_indices"] as? [Int]))
        XCTAssertEqual(surface(of: b, size: reference.size).filter { $0 }.count, e["surface_b"] as? Int)
        XCTAssertEqual(dice(a: a, b: b), try XCTUnwrap(e["dice"] as? Double), accuracy: 1e-15)
        let assd = try XCTUnwrap(averageSymmetricSurfaceDistance(a: a, b: b, size: reference.size, spacing: reference.spacing))
        XCTAssertEqual(assd, try XCTUnwrap(e["assd_mm"] as? Double), accuracy: 1e-12)
    }

    func testIdenticalMasks() throws {
        let cube = boxMask(grid, SIMD3(2, 3, 1), SIMD3(6, 5, 4))
        XCTAssertEqual(dice(a: cube, b: cube), 1)
        XCTAssertEqual(averageSymmetricSurfaceDistance(a: cube, b: cube, size: grid, spacing: spacing), 0)
    }

    func testDisjointMasks() throws {
        // Single voxels (1,1,1) and (4,1,1): 3 voxels apart along x at 0.8 mm.
        let a = boxMask(grid, SIMD3(1, 1, 1), SIMD3(1, 1, 1)), b = boxMask(grid, SIMD3(4, 1, 1), SIMD3(4, 1, 1))
        XCTAssertEqual(dice(a: a, b: b), 0)
        let assd = try XCTUnwrap(averageSymmetricSurfaceDistance(a: a, b: b, size: grid, spacing: spacing))
        XCTAssertEqual(assd, 2.4, accuracy: 1e-12)
    }

    /// A 4x4x4 cube against itself moved one voxel along x (0.8 mm) and along z (2.5 mm). Of the 56 surface
    /// voxels of each cube, the 16 on the leading face are one step from the other surface, and the 4 inner
    /// voxels of the trailing face are one step along the shift (x) or one x-step sideways (z: 0.8 < 2.5);
    /// all other surface voxels lie on the other surface. ASSD = (16 * step + 4 * min(step, 0.8)) / 56.
    func testOneVoxelShiftAlongAnisotropicAxes() throws {
        let a = boxMask(grid, SIMD3(2, 2, 2), SIMD3(5, 5, 5))
        let shiftedX = boxMask(grid, SIMD3(3, 2, 2), SIMD3(6, 5, 5))
        let shiftedZ = boxMask(grid, SIMD3(2, 2, 3), SIMD3(5, 5, 6))
        XCTAssertEqual(dice(a: a, b: shiftedX), 2 * 48 / 128)
        let assdX = try XCTUnwrap(averageSymmetricSurfaceDistance(a: a, b: shiftedX, size: grid, spacing: spacing))
        XCTAssertEqual(assdX, (16 * 0.8 + 4 * 0.8) / 56, accuracy: 1e-12)
        let assdZ = try XCTUnwrap(averageSymmetricSurfaceDistance(a: a, b: shiftedZ, size: grid, spacing: spacing))
        XCTAssertEqual(assdZ, (16 * 2.5 + 4 * 0.8) / 56, accuracy: 1e-12)
    }

    func testEmptyMaskHasNoDistance() {
        let a = boxMask(grid, SIMD3(1, 1, 1), SIMD3(2, 2, 2)), empty = [Bool](repeating: false, count: a.count)
        XCTAssertNil(averageSymmetricSurfaceDistance(a: a, b: empty, size: grid, spacing: spacing))
        XCTAssertEqual(dice(a: empty, b: empty), 0)
    }
}
