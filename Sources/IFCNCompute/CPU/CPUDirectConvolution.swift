import CConvKernels
import Foundation
import IFCNSupport

// 3x3x3 convolutions with the direct AVX2 kernels of CConvKernels (ConvolutionAlgorithm.direct).
// Work is split over the threads like the im2col path: each thread owns a static range of output
// rows (fixed z, y); it cuts the range into groups of rows of one z-plane, about 256 output voxels
// each, and the kernels copy each group's input neighbourhood into the thread's slab once.

extension CPUBackend {
    /// Rows per group: about 256 output voxels (measured on the 2-core Zen: 128-voxel groups were up to
    /// 20% slower at P=64, larger ones no faster).
    func directGroupRows(_ e: Extent3) -> Int { max(1, 256 / e.w) }

    /// Calls `body(z, y0, y1)` for the groups of output rows [rows.lowerBound, rows.upperBound):
    /// rows of one z-plane, at most `groupRows` of them.
    @inline(__always)
    func forEachDirectGroup(_ rows: Range<Int>, extent e: Extent3, groupRows: Int, _ body: (Int, Int, Int) -> Void) {
        var r = rows.lowerBound
        while r < rows.upperBound {
            let z = r / e.h, y0 = r - z * e.h
            let y1 = min(y0 + groupRows, e.h, y0 + rows.upperBound - r)
            body(z, y0, y1)
            r += y1 - y0
        }
    }

    /// output = beta * output + conv(input, packed) (+ bias), `packed` from `packDirectWeights`.
    func conv3Direct(input: UnsafePointer<Float>, cin: Int, extent e: Extent3, packed: UnsafePointer<Float>,
                     bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, cout: Int, beta: Float) {
        let rows = e.d * e.h, groupRows = directGroupRows(e)
        let parts = min(threads, rows)
        let slabs = scratch.reserve(ifcn_conv3_slab_floats(Int32(e.w), Int32(groupRows)))
        parallelFor(parts: parts) { t in
            forEachDirectGroup(partRange(t, of: parts, total: rows), extent: e, groupRows: groupRows) { z, y0, y1 in
                ifcn_conv3_forward_group(input, Int32(cin), Int32(e.d), Int32(e.h), Int32(e.w), packed, bias, output,
                                         Int32(cout), beta, Int32(z), Int32(y0), Int32(y1), slabs[t])
            }
        }
    }

    /// The forward kernels' layout of weight[cout][cin][27] (`transposeFlip`: of the backward-data
    /// filter, weight'[ci][co][26 - k]), in the weight scratch.
    func packDirectWeights(_ weight: UnsafePointer<Float>, cin: Int, cout: Int, transposeFlip: Bool) -> UnsafeMutablePointer<Float> {
        let packed = weightScratch.reserve(cin * cout * 27)[0]
        ifcn_conv3_pack(weight, Int32(cin), Int32(cout), transposeFlip ? 1 : 0, packed)
        return packed
    }

    /// gradWeight += the weight gradient, summed per thread in float32 over about `wideSumColumns`
    /// voxels, then in float64 (WideSums), as in the im2col path.
    func conv3DirectBackwardWeight(input: UnsafePointer<Float>, cin: Int, extent e: Extent3,
                                   gradOutput: UnsafePointer<Float>, cout: Int, gradWeight: UnsafeMutablePointer<Float>) {
        let rows = e.d * e.h, groupRows = directGroupRows(e)
        let parts = min(threads, rows)
        let slabs = scratch.reserve(ifcn_conv3_slab_floats(Int32(e.w), Int32(groupRows)))
        let sums = WideSums(pool: weightScratch, count: cout * cin * 27)
        parallelFor(parts: parts) { t in
            sums.clear(t)
            let tile = sums.tile(t)
            memset(tile, 0, sums.count * 4)
            var pending = 0
            let range = partRange(t, of: parts, total: rows)
            forEachDirectGroup(range, extent: e, groupRows: groupRows) { z, y0, y1 in
                ifcn_conv3_weight_grad_group(input, Int32(cin), Int32(e.d), Int32(e.h), Int32(e.w), gradOutput,
                                             Int32(cout), Int32(z), Int32(y0), Int32(y1), slabs[t], tile)
                pending += (y1 - y0) * e.w
                if pending >= wideSumColumns || z * e.h + y1 == range.upperBound {
                    sums.addTile(t)
                    memset(tile, 0, sums.count * 4)
                    pending = 0
                }
            }
        }
        sums.addTotal(parts: parts, into: gradWeight)
    }
}
