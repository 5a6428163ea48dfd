import CConvKernels
import Foundation
import IFCNSupport

// 3x3x3 convolutions by Winograd F(2x2x2, 3x3x3) or F(4x4x4, 3x3x3) with the AVX2 kernels of CConvKernels
// (ConvolutionAlgorithm.winograd, .winograd4): forward and backward data. Work is split over the threads by
// tile rows (a tile row: n output planes and n rows, all x, for tiles of n = 2 or 4); each thread cuts its
// range into groups of a few tile rows of one tile plane.

/// The C entry points of one Winograd tile size.
struct WinogradKernels {
    typealias ForwardGroup = @convention(c) (UnsafePointer<Float>?, Int32, Int32, Int32, Int32, UnsafePointer<Float>?,
                                             UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int32, Float,
                                             Int32, Int32, Int32, UnsafeMutablePointer<Float>?,
                                             UnsafePointer<ifcn_conv_epilogue>?) -> Void
    /// Outputs per tile along each axis.
    let tile: Int
    let filterFloats: (Int32, Int32) -> Int
    let pack: (UnsafePointer<Float>?, Int32, Int32, Int32, UnsafeMutablePointer<Float>?) -> Void
    let groupRows: (Int32, Int32, Int32) -> Int32
    let scratchFloats: (Int32, Int32, Int32, Int32) -> Int
    let forwardGroup: ForwardGroup

    static let f2 = WinogradKernels(tile: 2, filterFloats: ifcn_winograd_filter_floats, pack: ifcn_winograd_pack,
                                    groupRows: ifcn_winograd_group_rows, scratchFloats: ifcn_winograd_scratch_floats,
                                    forwardGroup: ifcn_winograd_forward_group)
    static let f4 = WinogradKernels(tile: 4, filterFloats: ifcn_winograd4_filter_floats, pack: ifcn_winograd4_pack,
                                    groupRows: ifcn_winograd4_group_rows, scratchFloats: ifcn_winograd4_scratch_floats,
                                    forwardGroup: ifcn_winograd4_forward_group)

    /// The kernels of `algorithm` (.winograd or .winograd4).
    static func of(_ algorithm: ConvolutionAlgorithm) -> WinogradKernels {
        precondition(algorithm == .winograd || algorithm == .winograd4, "\(algorithm) is no Winograd algorithm")
        return algorithm == .winograd4 ? f4 : f2
    }
}

extension CPUBackend {
    /// output = beta * output + conv(input, u) (+ bias), `u` from `packWinogradFilter` with the same kernels,
    /// then `epilogue` (a fused eval batch norm and ReLU) if given.
    func conv3Winograd(_ k: WinogradKernels, input: UnsafePointer<Float>, cin: Int, extent e: Extent3,
                       u: UnsafePointer<Float>, bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>,
                       cout: Int, beta: Float, epilogue: UnsafePointer<ifcn_conv_epilogue>? = nil) {
        let tileExtent = Extent3(e.d / k.tile, e.h / k.tile, e.w / k.tile)
        let tileRows = tileExtent.d * tileExtent.h
        let groupRows = Int(k.groupRows(Int32(e.w), Int32(cin), Int32(cout)))
        let parts = min(threads, tileRows)
        let buffers = scratch.reserve(k.scratchFloats(Int32(cin), Int32(cout), Int32(e.w), Int32(groupRows)))
        parallelFor(parts: parts) { t in
            forEachDirectGroup(partRange(t, of: parts, total: tileRows), extent: tileExtent, groupRows: groupRows) { tz, ty0, ty1 in
                k.forwardGroup(input, Int32(cin), Int32(e.d), Int32(e.h), Int32(e.w), u, bias, output,
                               Int32(cout), beta, Int32(tz), Int32(ty0), Int32(ty1), buffers[t], epilogue)
            }
        }
    }

    /// The transformed filter of weight[cout][cin][27] (`transposeFlip`: of the backward-data filter),
    /// in the weight scratch.
    func packWinogradFilter(_ k: WinogradKernels, _ weight: UnsafePointer<Float>, cin: Int, cout: Int,
                            transposeFlip: Bool) -> UnsafeMutablePointer<Float> {
        let u = weightScratch.reserve(k.filterFloats(Int32(cin), Int32(cout)))[0]
        k.pack(weight, Int32(cin), Int32(cout), transposeFlip ? 1 : 0, u)
        return u
    }
}
