import XCTest
@testable import IFCNEvaluation
import IFCNSupport

final class MatchingTests: XCTestCase {
    /// Labels on a 1-D line of voxels.
    func table(_ reference: [Int32], _ prediction: [Int32]) -> OverlapTable {
        OverlapTable(reference: reference, prediction: prediction, size: SIMD3(reference.count, 1, 1))
    }

    func testContingencyCountsAndBoxes() {
        let t = table([0, 1, 1, 1, 2, 2, 0, 0], [0, 0, 5, 5, 5, 7, 7, 0])
        XCTAssertEqual(t.referenceCounts, [1: 3, 2: 2])
        XCTAssertEqual(t.predictionCounts, [5: 3, 7: 2])
        XCTAssertEqual(t.overlaps, [LabelPair(reference: 1, prediction: 5): 2, LabelPair(reference: 2, prediction: 5): 1,
                                    LabelPair(reference: 2, prediction: 7): 1])
        XCTAssertEqual(t.referenceBoxes[1], VoxelBox(lower: SIMD3(1, 0, 0), upper: SIMD3(3, 0, 0)))
        XCTAssertEqual(t.predictionBoxes[7], VoxelBox(lower: SIMD3(5, 0, 0), upper: SIMD3(6, 0, 0)))
        XCTAssertEqual(t.dice(reference: 1, prediction: 5), 4.0 / 6.0)
    }

    /// The parallel slab pass over a large volume agrees with a plain count.
    func testParallelCountMatchesSerialCount() {
        let size = SIMD3(37, 29, 23)
        var generator = SplitMix64(seed: 3)
        let reference = (0..<size.x * size.y * size.z).map { _ in Int32(generator.next() % 4) }
        let prediction = (0..<reference.count).map { _ in Int32(generator.next() % 3) * 10 }
        let t = OverlapTable(reference: reference, prediction: prediction, size: size)
        var overlaps: [LabelPair: Int] = [:]
        for (r, p) in zip(reference, prediction) where r != 0 && p != 0 {
            overlaps[LabelPair(reference: r, prediction: p), default: 0] += 1
        }
        XCTAssertEqual(t.overlaps, overlaps)
        XCTAssertEqual(t.referenceCounts[3], reference.filter { $0 == 3 }.count)
        XCTAssertEqual(t.referenceBoxes[1], VoxelBox(lower: .zero, upper: size &- 1))
    }

    /// Predicted 7 overlaps reference 1 by 3 and reference 2 by 4: reference 2 takes it (larger overlap), and
    /// reference 1 falls back to predicted 8, which it overlaps by only 2.
    func testGreedyMatchingWithConflictingOverlap() {
        let reference: [Int32] = [1, 1, 1, 1, 1, 2, 2, 2, 2, 0]
        let prediction: [Int32] = [8, 8, 7, 7, 7, 7, 7, 7, 7, 9]
        let m = InstanceMatching(table(reference, prediction))
        XCTAssertEqual(m.matches, [2: 7, 1: 8])
        XCTAssertEqual(m.missed, [])
        XCTAssertEqual(m.falsePositives, [9])
    }

    /// Equal overlaps: the smaller reference label wins, then the smaller predicted label.
    func testTiesAreBrokenBySmallerLabels() {
        let m1 = InstanceMatching(table([3, 3, 4, 4], [6, 6, 6, 6]))
        XCTAssertEqual(m1.matches, [3: 6])
        XCTAssertEqual(m1.missed, [4])
        let m2 = InstanceMatching(table([3, 3, 3, 3], [9, 9, 6, 6]))
        XCTAssertEqual(m2.matches, [3: 6])
        XCTAssertEqual(m2.falsePositives, [9])
    }

    func testMissedAndFalsePositive() {
        let m = InstanceMatching(table([1, 1, 0, 2, 2, 0, 0], [4, 4, 0, 0, 0, 5, 5]))
        XCTAssertEqual(m.matches, [1: 4])
        XCTAssertEqual(m.missed, [2])
        XCTAssertEqual(m.falsePositives, [5])
    }
}
