import CConvKernels
import Foundation
import IFCNSupport

// 3x3x3 convolutions by Winograd F(2x2x2, 3x3x3) with the AVX2 kernels of CConvKernels
// (ConvolutionAlgorithm.winograd): forward and backward data. Work is split over the threads by
// tile rows (a tile row: output planes 2tz, 2tz+1 and rows 2ty, 2ty+1, all x); each thread cuts its
// range into groups of about 64 tiles of one tile plane.

extension CPUBackend {
    /// output = beta * output + conv(input, u) (+ bias), `u` from `packWinogradFilter`.
    func conv3Winograd(input: UnsafePointer<Float>, cin: Int, extent e: Extent3, u: UnsafePointer<Float>,
                       bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, cout: Int, beta: Float) {
        let tileExtent = Extent3(e.d / 2, e.h / 2, e.w / 2)
        let tileRows = tileExtent.d * tileExtent.h
        let groupRows = Int(ifcn_winograd_group_rows(Int32(e.w), Int32(cin), Int32(cout)))
        let parts = min(threads, tileRows)
        let buffers = scratch.reserve(ifcn_winograd_scratch_floats(Int32(cin), Int32(cout), Int32(e.w), Int32(groupRows)))
        parallelFor(parts: parts) { t in
            forEachDirectGroup(partRange(t, of: parts, total: tileRows), extent: tileExtent, groupRows: groupRows) { tz, ty0, ty1 in
                ifcn_winograd_forward_group(input, Int32(cin), Int32(e.d), Int32(e.h), Int32(e.w), u, bias, output,
                                            Int32(cout), beta, Int32(tz), Int32(ty0), Int32(ty1), buffers[t])
            }
        }
    }

    /// The transformed filter of weight[cout][cin][27] (`transposeFlip`: of the backward-data filter),
    /// in the weight scratch.
    func packWinogradFilter(_ weight: UnsafePointer<Float>, cin: Int, cout: Int, transposeFlip: Bool) -> UnsafeMutablePointer<Float> {
        let u = weightScratch.reserve(ifcn_winograd_filter_floats(Int32(cin), Int32(cout)))[0]
        ifcn_winograd_pack(weight, Int32(cin), Int32(cout), transposeFlip ? 1 : 0, u)
        return u
    }
}
