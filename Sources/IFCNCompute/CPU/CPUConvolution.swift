import CConvKernels
import COpenBLAS
import Foundation
import IFCNSupport

// 3x3x3 convolutions as chunked im2col + sgemm (the direct AVX2 kernels, where the rule picks them,
// are in CPUDirectConvolution.swift). A chunk is a run of whole output rows
// (fixed z, y; all x) so its im2col is a few shifted row copies; each thread owns a static
// range of rows and its own column buffer, so memory stays bounded at any patch size.

extension CPUBackend {
    /// Output columns per chunk: enough for an efficient sgemm, small enough to stay in cache.
    @inline(__always)
    func rowsPerChunk(_ e: Extent3, inChannels: Int) -> Int {
        let targetColumns = inChannels >= 64 ? 256 : 128  // measured best on 2-core Zen (docs/BENCHMARKS.md)
        return max(1, min(e.d * e.h, targetColumns / max(1, e.w)))
    }

    /// im2col of output rows [r0, r1): col[(ci*27 + k), (r - r0)*W + x].
    @inline(__always)
    func im2col(_ src: UnsafePointer<Float>, inChannels cin: Int, extent e: Extent3,
                rows r0: Int, _ r1: Int, into col: UnsafeMutablePointer<Float>) {
        let W = e.w, H = e.h, D = e.d, V = e.voxels
        let n = (r1 - r0) * W
        for ci in 0..<cin {
            let sc = src + ci * V
            for kz in 0..<3 {
                for ky in 0..<3 {
                    let base = col + (ci * 27 + kz * 9 + ky * 3) * n
                    for r in r0..<r1 {
                        let z = r / H, y = r - (r / H) * H
                        let sz = z + kz - 1, sy = y + ky - 1
                        let d0 = base + (r - r0) * W
                        let d1 = d0 + n, d2 = d1 + n
                        if sz < 0 || sz >= D || sy < 0 || sy >= H {
                            memset(d0, 0, W * 4); memset(d1, 0, W * 4); memset(d2, 0, W * 4)
                            continue
                        }
                        let s = sc + (sz * H + sy) * W
                        d0[0] = 0
                        if W > 1 { memcpy(d0 + 1, s, (W - 1) * 4) }
                        memcpy(d1, s, W * 4)
                        if W > 1 { memcpy(d2, s + 1, (W - 1) * 4) }
                        d2[W - 1] = 0
                    }
                }
            }
        }
    }

    /// out[co, :] = beta * out[co, :] + sum_k weight[co, k] * im2col(input)[k, :] (+ bias).
    func conv3(input: UnsafePointer<Float>, cin: Int, extent e: Extent3, weight: UnsafePointer<Float>,
               bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, cout: Int, beta: Float,
               algorithm: ConvolutionAlgorithm? = nil) {
        let algorithm = algorithm ?? ConvolutionAlgorithm.choose(inChannels: cin, outChannels: cout, extent: e, forced: convolutionAlgorithm)
        switch algorithm {
        case .direct:  // CPUDirectConvolution.swift
            let packed = packDirectWeights(weight, cin: cin, cout: cout, transposeFlip: false)
            return conv3Direct(input: input, cin: cin, extent: e, packed: packed, bias: bias, output: output,
                               cout: cout, beta: beta)
        case .winograd, .winograd4:  // CPUWinogradConvolution.swift
            let k = WinogradKernels.of(algorithm)
            let u = packWinogradFilter(k, weight, cin: cin, cout: cout, transposeFlip: false)
            return conv3Winograd(k, input: input, cin: cin, extent: e, u: u, bias: bias, output: output, cout: cout, beta: beta)
        case .im2col:
            break
        }
        let K = cin * 27, W = e.w, V = e.voxels, rows = e.d * e.h
        let rpc = rowsPerChunk(e, inChannels: cin)
        let parts = min(threads, rows)
        let cols = scratch.reserve(K * rpc * W)
        parallelFor(parts: parts) { t in
            let col = cols[t]
            let range = partRange(t, of: parts, total: rows)
            var r0 = range.lowerBound
            while r0 < range.upperBound {
                let r1 = min(r0 + rpc, range.upperBound)
                let n = (r1 - r0) * W
                im2col(input, inChannels: cin, extent: e, rows: r0, r1, into: col)
                let out = output + r0 * W
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(cout), Int32(n), Int32(K),
                            1, weight, Int32(K), col, Int32(n), beta, out, Int32(V))
                if let bias {
                    for co in 0..<cout {
                        let b = bias[co], o = out + co * V
                        for i in 0..<n { o[i] += b }
                    }
                }
                r0 = r1
            }
        }
    }

    public func conv3Forward(input: TensorRef, inChannels: Int, extent: Extent3,
                             weight: TensorRef, bias: TensorRef?, output: TensorRef, outChannels: Int) {
        precondition(input.count == inChannels * extent.voxels && output.count == outChannels * extent.voxels)
        defer { roundToFormat(output) }
        if emulatesGPUMath {  // CPUGPUMathEmulation.swift
            return conv3ForwardEmulatingGPUMath(input: input, inChannels: inChannels, extent: extent, weight: weight,
                                                bias: bias, output: output, outChannels: outChannels)
        }
        conv3(input: input.host, cin: inChannels, extent: extent, weight: weight.host, bias: bias?.host,
              output: output.host, cout: outChannels, beta: 0)
    }

    /// Where the inference rule picks Winograd, the batch norm runs in the kernels' epilogue (its scale and shift
    /// computed as batchNormEvalForward does, applied with the same two roundings); elsewhere the two ops.
    public func conv3BatchNormInferenceForward(input: TensorRef, inChannels: Int, extent: Extent3, weight: TensorRef,
                                               convOutput: TensorRef, outChannels: Int, norm: EvalBatchNorm, output: TensorRef) {
        defer { roundToFormat(output) }
        let algorithm = ConvolutionAlgorithm.choose(inChannels: inChannels, outChannels: outChannels, extent: extent,
                                                    purpose: .inference, forced: convolutionAlgorithm)
        guard !bfloat16Inference && !emulatesGPUMath && (algorithm == .winograd || algorithm == .winograd4) else {
            conv3InferenceForward(input: input, inChannels: inChannels, extent: extent, weight: weight, bias: nil,
                                  output: convOutput, outChannels: outChannels)
            return batchNormEvalForward(input: convOutput, output: output, channels: outChannels, voxels: extent.voxels,
                                        gamma: norm.gamma, beta: norm.beta, runningMean: norm.runningMean,
                                        runningVar: norm.runningVar, epsilon: norm.epsilon, relu: norm.relu)
        }
        precondition(input.count == inChannels * extent.voxels && output.count == outChannels * extent.voxels)
        var scale = [Float](repeating: 0, count: outChannels), shift = scale
        let (g, b, rm, rv) = (norm.gamma.host, norm.beta.host, norm.runningMean.host, norm.runningVar.host)
        for c in 0..<outChannels {
            (scale[c], shift[c]) = evalBatchNormAffine(gamma: g[c], beta: b[c], mean: rm[c], variance: rv[c], epsilon: norm.epsilon)
        }
        let k = WinogradKernels.of(algorithm)
        let u = packWinogradFilter(k, weight.host, cin: inChannels, cout: outChannels, transposeFlip: false)
        scale.withUnsafeBufferPointer { sc in
            shift.withUnsafeBufferPointer { sh in
                var epilogue = ifcn_conv_epilogue(scale: sc.baseAddress, shift: sh.baseAddress, relu: norm.relu ? 1 : 0)
                conv3Winograd(k, input: input.host, cin: inChannels, extent: extent, u: u, bias: nil, output: output.host,
                              cout: outChannels, beta: 0, epilogue: &epilogue)
            }
        }
    }

    public func conv3InferenceForward(input: TensorRef, inChannels: Int, extent: Extent3,
                                      weight: TensorRef, bias: TensorRef?, output: TensorRef, outChannels: Int) {
        precondition(input.count == inChannels * extent.voxels && output.count == outChannels * extent.voxels)
        defer { roundToFormat(output) }
        if bfloat16Inference {  // CPUBFloat16Emulation.swift
            return conv3InferenceBFloat16(input: input, inChannels: inChannels, extent: extent, weight: weight, bias: bias,
                                          output: output, outChannels: outChannels)
        }
        if emulatesGPUMath {  // CPUGPUMathEmulation.swift
            return conv3ForwardEmulatingGPUMath(input: input, inChannels: inChannels, extent: extent, weight: weight,
                                                bias: bias, output: output, outChannels: outChannels)
        }
        let algorithm = ConvolutionAlgorithm.choose(inChannels: inChannels, outChannels: outChannels, extent: extent,
                                                    purpose: .inference, forced: convolutionAlgorithm)
        conv3(input: input.host, cin: inChannels, extent: extent, weight: weight.host, bias: bias?.host,
              output: output.host, cout: outChannels, beta: 0, algorithm: algorithm)
    }

    /// dX = conv(dY, W') with W'[ci][co][26 - k] = W[co][ci][k] (full correlation with the flipped kernel).
    public func conv3BackwardData(gradOutput: TensorRef, outChannels: Int, extent: Extent3,
                                  weight: TensorRef, gradInput: TensorRef, inChannels: Int, accumulate: Bool) {
        defer { roundToFormat(gradInput) }
        if emulatesGPUMath {
            return conv3BackwardDataEmulatingGPUMath(gradOutput: gradOutput, outChannels: outChannels, extent: extent,
                                                     weight: weight, gradInput: gradInput, inChannels: inChannels,
                                                     accumulate: accumulate)
        }
        conv3BackwardData(gradOutput: gradOutput, outChannels: outChannels, extent: extent, weight: weight,
                          gradInput: gradInput, inChannels: inChannels, accumulate: accumulate,
                          algorithm: ConvolutionAlgorithm.choose(inChannels: outChannels, outChannels: inChannels, extent: extent,
                                                                 purpose: .backwardData, forced: convolutionAlgorithm))
    }

    /// The same with the algorithm given (tests compare them).
    func conv3BackwardData(gradOutput: TensorRef, outChannels: Int, extent: Extent3, weight: TensorRef,
                           gradInput: TensorRef, inChannels: Int, accumulate: Bool, algorithm: ConvolutionAlgorithm) {
        let cin = inChannels, cout = outChannels, beta: Float = accumulate ? 1 : 0
        switch algorithm {
        case .direct:
            let packed = packDirectWeights(weight.host, cin: cin, cout: cout, transposeFlip: true)
            return conv3Direct(input: gradOutput.host, cin: cout, extent: extent, packed: packed, bias: nil,
                               output: gradInput.host, cout: cin, beta: beta)
        case .winograd, .winograd4:
            let k = WinogradKernels.of(algorithm)
            let u = packWinogradFilter(k, weight.host, cin: cin, cout: cout, transposeFlip: true)
            return conv3Winograd(k, input: gradOutput.host, cin: cout, extent: extent, u: u, bias: nil,
                                 output: gradInput.host, cout: cin, beta: beta)
        case .im2col:
            break
        }
        let flipped = weightScratch.reserve(cin * cout * 27)[0]
        let w = weight.host
        for co in 0..<cout {
            for ci in 0..<cin {
                let src = w + (co * cin + ci) * 27
                let dst = flipped + (ci * cout + co) * 27
                for k in 0..<27 { dst[26 - k] = src[k] }
            }
        }
        conv3(input: gradOutput.host, cin: cout, extent: extent, weight: flipped, bias: nil,
              output: gradInput.host, cout: cin, beta: beta, algorithm: .im2col)
    }

    /// dW[co][k] += sum_p dY[co, p] * im2col(X)[k, p]. The chunks' sgemms sum into a float32 tile
    /// (beta 0, then 1) that is added into the thread's float64 sums every `wideSumColumns`
    /// columns; the thread sums are added in thread order in float64 and rounded once into dW, so
    /// a patch-long reduction carries the float32 error of ~1000 columns only, and the bits depend
    /// only on the thread count, never on scheduling.
    public func conv3BackwardWeight(input: TensorRef, inChannels: Int, extent e: Extent3, gradOutput: TensorRef,
                                    outChannels: Int, gradWeight: TensorRef, gradBias: TensorRef?) {
        if emulatesGPUMath {
            return conv3BackwardWeightEmulatingGPUMath(input: input, inChannels: inChannels, extent: e, gradOutput: gradOutput,
                                                       outChannels: outChannels, gradWeight: gradWeight, gradBias: gradBias)
        }
        conv3BackwardWeight(input: input, inChannels: inChannels, extent: e, gradOutput: gradOutput,
                            outChannels: outChannels, gradWeight: gradWeight, gradBias: gradBias,
                            algorithm: ConvolutionAlgorithm.choose(inChannels: inChannels, outChannels: outChannels, extent: e, forced: convolutionAlgorithm))
    }

    /// The same with the algorithm given (tests compare them).
    func conv3BackwardWeight(input: TensorRef, inChannels: Int, extent e: Extent3, gradOutput: TensorRef,
                             outChannels: Int, gradWeight: TensorRef, gradBias: TensorRef?, algorithm: ConvolutionAlgorithm) {
        let cin = inChannels, cout = outChannels
        if algorithm.weightGradient == .direct {
            conv3DirectBackwardWeight(input: input.host, cin: cin, extent: e, gradOutput: gradOutput.host, cout: cout,
                                      gradWeight: gradWeight.host)
            if let gradBias { addChannelSums(gradOutput.host, channels: cout, voxels: e.voxels, into: gradBias.host) }
            return
        }
        let K = cin * 27, W = e.w, V = e.voxels, rows = e.d * e.h
        let rpc = rowsPerChunk(e, inChannels: cin)
        let parts = min(threads, rows)
        let cols = scratch.reserve(K * rpc * W)
        let sums = WideSums(pool: weightScratch, count: cout * K)
        let x = input.host, dy = gradOutput.host
        parallelFor(parts: parts) { t in
            let col = cols[t]
            sums.clear(t)
            let range = partRange(t, of: parts, total: rows)
            var r0 = range.lowerBound
            var pending = 0
            while r0 < range.upperBound {
                let r1 = min(r0 + rpc, range.upperBound)
                let n = (r1 - r0) * W
                im2col(x, inChannels: cin, extent: e, rows: r0, r1, into: col)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(cout), Int32(K), Int32(n),
                            1, dy + r0 * W, Int32(V), col, Int32(n), pending == 0 ? 0 : 1, sums.tile(t), Int32(K))
                pending += n
                if pending >= wideSumColumns || r1 == range.upperBound {
                    sums.addTile(t)
                    pending = 0
                }
                r0 = r1
            }
        }
        sums.addTotal(parts: parts, into: gradWeight.host)
        if let gradBias { addChannelSums(dy, channels: cout, voxels: V, into: gradBias.host) }
    }

    /// out[c] += sum_i x[c * voxels + i], summed in float64, channels split over the threads.
    func addChannelSums(_ x: UnsafePointer<Float>, channels: Int, voxels: Int, into out: UnsafeMutablePointer<Float>) {
        let parts = channels * voxels >= 1 << 15 ? min(threads, channels) : 1
        parallelFor(parts: parts) { t in
            for c in partRange(t, of: parts, total: channels) {
                var s = 0.0
                let p = x + c * voxels
                for i in 0..<voxels { s += Double(p[i]) }
                out[c] += Float(s)
            }
        }
    }

    public func conv1Forward(input: TensorRef, inChannels: Int, voxels: Int,
                             weight: TensorRef, bias: TensorRef?, output: TensorRef, outChannels: Int) {
        defer { roundToFormat(output) }
        let x = input.host, w = weight.host, y = output.host
        let parts = voxels >= 4096 ? threads : 1
        let b = bias?.host
        parallelFor(parts: parts) { t in
            let r = partRange(t, of: parts, total: voxels)
            guard !r.isEmpty else { return }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(outChannels), Int32(r.count),
                        Int32(inChannels), 1, w, Int32(inChannels), x + r.lowerBound, Int32(voxels),
                        0, y + r.lowerBound, Int32(voxels))
            if let b {
                for co in 0..<outChannels {
                    let o = y + co * voxels
                    for i in r { o[i] += b[co] }
                }
            }
        }
    }

    public func conv1Backward(input: TensorRef, inChannels: Int, voxels: Int, weight: TensorRef,
                              gradOutput: TensorRef, outChannels: Int,
                              gradInput: TensorRef?, accumulate: Bool, gradWeight: TensorRef, gradBias: TensorRef?) {
        defer { roundToFormat(gradInput) }
        let x = input.host, w = weight.host, dy = gradOutput.host
        let parts = voxels >= 4096 ? threads : 1
        if let gradInput {
            let dx = gradInput.host
            parallelFor(parts: parts) { t in
                let r = partRange(t, of: parts, total: voxels)
                guard !r.isEmpty else { return }
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(inChannels), Int32(r.count),
                            Int32(outChannels), 1, w, Int32(inChannels), dy + r.lowerBound, Int32(voxels),
                            accumulate ? 1 : 0, dx + r.lowerBound, Int32(voxels))
            }
        }
        // dW = dY x^T over all voxels: per-thread voxel ranges in chunks, float64 sums as in conv3BackwardWeight.
        let count = outChannels * inChannels
        let sums = WideSums(pool: weightScratch, count: count)
        parallelFor(parts: parts) { t in
            sums.clear(t)
            let range = partRange(t, of: parts, total: voxels)
            var v0 = range.lowerBound
            while v0 < range.upperBound {
                let v1 = min(v0 + conv1WeightChunk, range.upperBound)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(outChannels), Int32(inChannels), Int32(v1 - v0),
                            1, dy + v0, Int32(voxels), x + v0, Int32(voxels), 0, sums.tile(t), Int32(inChannels))
                sums.addTile(t)
                v0 = v1
            }
        }
        sums.addTotal(parts: parts, into: gradWeight.host)
        if let gradBias { addChannelSums(dy, channels: outChannels, voxels: voxels, into: gradBias.host) }
    }
}
