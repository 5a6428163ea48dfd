import Foundation
import IFCNSupport

/// A (reference label, predicted label) pair.
public struct LabelPair: Hashable, Sendable {
    public var reference: Int32
    public var prediction: Int32

    public init(reference: Int32, prediction: Int32) {
        self.reference = reference
        self.prediction = prediction
    }
}

/// Per-label voxel counts, bounding boxes and the sparse contingency table of two label maps on one grid,
/// all gathered in one pass. Label 0 is background and is left out everywhere.
public struct OverlapTable: Sendable {
    /// Voxels of each non-zero reference label.
    public var referenceCounts: [Int32: Int] = [:]
    /// Voxels of each non-zero predicted label.
    public var predictionCounts: [Int32: Int] = [:]
    /// Voxels labelled `reference` in the reference and `prediction` in the prediction (both non-zero, count > 0).
    public var overlaps: [LabelPair: Int] = [:]
    /// Bounding box of each non-zero reference label.
    public var referenceBoxes: [Int32: VoxelBox] = [:]
    /// Bounding box of each non-zero predicted label.
    public var predictionBoxes: [Int32: VoxelBox] = [:]

    public init() {}

    /// Counts both label maps in one parallel pass over z-slabs. The arrays must have `size` voxels each.
    public init(reference: [Int32], prediction: [Int32], size: SIMD3<Int>) {
        precondition(reference.count == size.x * size.y * size.z && prediction.count == reference.count,
                     "OverlapTable: label arrays do not match size \(size)")
        let slabs = Swift.max(1, Swift.min(size.z, activeCoreCount * 4))
        var partials = [OverlapTable](repeating: OverlapTable(), count: slabs)
        reference.withUnsafeBufferPointer { ref in
            prediction.withUnsafeBufferPointer { pred in
                partials.withUnsafeMutableBufferPointer { out in
                    let results = out
                    parallelFor(parts: slabs) { slab in
                        results[slab] = OverlapTable.count(ref, pred, size: size,
                                                           zRange: partRange(slab, of: slabs, total: size.z))
                    }
                }
            }
        }
        for partial in partials { merge(partial) }
    }

    /// Counts the slabs `zRange`, one x-run of equal label pairs at a time.
    private static func count(_ ref: UnsafeBufferPointer<Int32>, _ pred: UnsafeBufferPointer<Int32>,
                              size: SIMD3<Int>, zRange: Range<Int>) -> OverlapTable {
        var table = OverlapTable()
        let nx = size.x
        for z in zRange {
            for y in 0..<size.y {
                let row = nx * (y + size.y * z)
                var x = 0
                while x < nx {
                    let r = ref[row + x], p = pred[row + x]
                    var end = x + 1
                    while end < nx && ref[row + end] == r && pred[row + end] == p { end += 1 }
                    if r != 0 || p != 0 {
                        let run = end - x
                        let box = VoxelBox(lower: SIMD3(x, y, z), upper: SIMD3(end - 1, y, z))
                        if r != 0 {
                            table.referenceCounts[r, default: 0] += run
                            table.referenceBoxes[r] = table.referenceBoxes[r].map { $0.union(box) } ?? box
                        }
                        if p != 0 {
                            table.predictionCounts[p, default: 0] += run
                            table.predictionBoxes[p] = table.predictionBoxes[p].map { $0.union(box) } ?? box
                        }
                        if r != 0 && p != 0 {
                            table.overlaps[LabelPair(reference: r, prediction: p), default: 0] += run
                        }
                    }
                    x = end
                }
            }
        }
        return table
    }

    /// Adds the counts of `other` (a disjoint part of the same grid).
    private mutating func merge(_ other: OverlapTable) {
        referenceCounts.merge(other.referenceCounts, uniquingKeysWith: +)
        predictionCounts.merge(other.predictionCounts, uniquingKeysWith: +)
        overlaps.merge(other.overlaps, uniquingKeysWith: +)
        referenceBoxes.merge(other.referenceBoxes) { $0.union($1) }
        predictionBoxes.merge(other.predictionBoxes) { $0.union($1) }
    }

    /// Dice of reference label `reference` and predicted label `prediction`: 2|A∩B| / (|A| + |B|), 0 when both are empty.
    public func dice(reference: Int32, prediction: Int32) -> Double {
        let a = referenceCounts[reference] ?? 0, b = predictionCounts[prediction] ?? 0
        let both = overlaps[LabelPair(reference: reference, prediction: prediction)] ?? 0
        return diceFromCounts(intersection: both, a: a, b: b)
    }
}

/// 2 * intersection / (a + b); 0 when both sets are empty (as medpy's `dc`).
func diceFromCounts(intersection: Int, a: Int, b: Int) -> Double {
    a + b == 0 ? 0 : 2 * Double(intersection) / Double(a + b)
}

/// Dice coefficient 2|A∩B| / (|A| + |B|) of two masks of equal length; 0 when both are empty (as medpy's `dc`).
public func dice(a: [Bool], b: [Bool]) -> Double {
    precondition(a.count == b.count, "dice: masks of different length \(a.count) and \(b.count)")
    var countA = 0, countB = 0, both = 0
    a.withUnsafeBufferPointer { pa in
        b.withUnsafeBufferPointer { pb in
            for i in 0..<pa.count {
                let x = pa[i], y = pb[i]
                if x { countA += 1 }
                if y { countB += 1 }
                if x && y { both += 1 }
            }
        }
    }
    return diceFromCounts(intersection: both, a: countA, b: countB)
}
