import Foundation
import IFCNSupport

// Batch norm over one sample: statistics per channel over its voxels. Each channel is
// reduced by one thread in a fixed order, so results do not depend on the thread count.

extension CPUBackend {
    public func batchNormTrainForward(input: TensorRef, output: TensorRef, channels: Int, voxels: Int,
                                      gamma: TensorRef, beta: TensorRef, runningMean: TensorRef, runningVar: TensorRef,
                                      saved: BatchNormSaved, momentum: Float, epsilon: Float, relu: Bool) {
        defer { roundToFormat(output) }
        let x = input.host, y = output.host, g = gamma.host, b = beta.host
        let rm = runningMean.host, rv = runningVar.host
        let sm = saved.mean.host, si = saved.invStd.host, sk = saved.scale.host, sb = saved.shift.host
        let n = voxels
        let parts = channels * n >= 1 << 14 ? min(threads, channels) : 1
        parallelFor(parts: parts) { t in
            for c in partRange(t, of: parts, total: channels) {
                let xc = x + c * n, yc = y + c * n
                let (s, ss) = channelSums(xc, n)
                let mean = s / Double(n)
                let variance = max(ss / Double(n) - mean * mean, 0)
                let invStd = 1 / (variance + Double(epsilon)).squareRoot()
                sm[c] = Float(mean); si[c] = Float(invStd)
                let unbiased = n > 1 ? variance * Double(n) / Double(n - 1) : variance
                rm[c] = Float((1 - Double(momentum)) * Double(rm[c]) + Double(momentum) * mean)
                rv[c] = Float((1 - Double(momentum)) * Double(rv[c]) + Double(momentum) * unbiased)
                let scale = Float(Double(g[c]) * invStd)
                let shift = b[c] - Float(mean) * scale
                sk[c] = scale; sb[c] = shift
                normalise(xc, yc, n, scale, shift, relu: relu)
            }
        }
    }

    public func batchNormRecompute(input: TensorRef, output: TensorRef, channels: Int, voxels: Int,
                                   saved: BatchNormSaved, relu: Bool) {
        defer { roundToFormat(output) }
        let x = input.host, y = output.host, sk = saved.scale.host, sb = saved.shift.host
        let n = voxels
        let parts = channels * n >= 1 << 15 ? min(threads, channels) : 1
        parallelFor(parts: parts) { t in
            for c in partRange(t, of: parts, total: channels) {
                normalise(x + c * n, y + c * n, n, sk[c], sb[c], relu: relu)
            }
        }
    }

    /// Eval batch norm as y = x * scale + shift: scale = gamma / sqrt(var + eps) in double, rounded to float,
    /// shift = beta - mean * scale in float (batchNormEvalForward and the Winograd kernels' epilogue).
    @inline(__always)
    func evalBatchNormAffine(gamma: Float, beta: Float, mean: Float, variance: Float, epsilon: Float) -> (scale: Float, shift: Float) {
        let invStd = 1 / (Double(variance) + Double(epsilon)).squareRoot()
        let scale = Float(Double(gamma) * invStd)
        return (scale, beta - mean * scale)
    }

    public func batchNormEvalForward(input: TensorRef, output: TensorRef, channels: Int, voxels: Int,
                                     gamma: TensorRef, beta: TensorRef, runningMean: TensorRef, runningVar: TensorRef,
                                     epsilon: Float, relu: Bool) {
        defer { roundToFormat(output) }
        let x = input.host, y = output.host, g = gamma.host, b = beta.host
        let rm = runningMean.host, rv = runningVar.host
        let n = voxels
        let parts = channels * n >= 1 << 15 ? min(threads, channels) : 1
        parallelFor(parts: parts) { t in
            for c in partRange(t, of: parts, total: channels) {
                let xc = x + c * n, yc = y + c * n
                let (scale, shift) = evalBatchNormAffine(gamma: g[c], beta: b[c], mean: rm[c], variance: rv[c], epsilon: epsilon)
                normalise(xc, yc, n, scale, shift, relu: relu)
            }
        }
    }

    public func batchNormBackward(input: TensorRef, gradOutput: TensorRef, gradInput: TensorRef,
                                  channels: Int, voxels: Int, gamma: TensorRef, saved: BatchNormSaved,
                                  gradGamma: TensorRef, gradBeta: TensorRef, relu: Bool, accumulate: Bool) {
        defer { roundToFormat(gradInput) }
        let x = input.host, dy = gradOutput.host, dx = gradInput.host
        let g = gamma.host, sm = saved.mean.host, si = saved.invStd.host, sk = saved.scale.host, sb = saved.shift.host
        let gg = gradGamma.host, gb = gradBeta.host
        let n = voxels
        let parts = channels * n >= 1 << 14 ? min(threads, channels) : 1
        parallelFor(parts: parts) { t in
            for c in partRange(t, of: parts, total: channels) {
                let xc = x + c * n, dyc = dy + c * n, dxc = dx + c * n
                let mean = sm[c], invStd = si[c], mask = ReLUMask(scale: sk[c], shift: sb[c])
                let (sg, sgx) = relu ? gradientSums(xc, mask, dyc, n, mean, invStd, relu: true)
                                     : gradientSums(xc, mask, dyc, n, mean, invStd, relu: false)
                gg[c] += Float(sgx)
                gb[c] += Float(sg)
                let k = g[c] * invStd
                let mg = Float(sg / Double(n)), mgx = Float(sgx / Double(n))
                switch (relu, accumulate) {
                case (true, true): inputGradient(xc, mask, dyc, dxc, n, mean, invStd, k, mg, mgx, relu: true, accumulate: true)
                case (true, false): inputGradient(xc, mask, dyc, dxc, n, mean, invStd, k, mg, mgx, relu: true, accumulate: false)
                case (false, true): inputGradient(xc, mask, dyc, dxc, n, mean, invStd, k, mg, mgx, relu: false, accumulate: true)
                case (false, false): inputGradient(xc, mask, dyc, dxc, n, mean, invStd, k, mg, mgx, relu: false, accumulate: false)
                }
            }
        }
    }

}

// Per-channel loops of batch norm, written for the CPU's pipelines: four independent double accumulators
// instead of one serial chain, and the ReLU mask as a select rather than a branch. Each voxel's term is the
// same double as before (a float converted, or the exact product of two floats); only the order of the sums
// changes, and it is fixed, so results do not depend on the thread count.

/// y = x * scale + shift, then ReLU when `relu`: the training, recomputed and eval outputs alike.
@inline(__always)
private func normalise(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int,
                       _ scale: Float, _ shift: Float, relu: Bool) {
    if relu {
        for i in 0..<n { y[i] = max(x[i] * scale + shift, 0) }
    } else {
        for i in 0..<n { y[i] = x[i] * scale + shift }
    }
}

/// The fused ReLU's mask from batch norm's input: the output was positive where x * scale + shift is, the same
/// float operations as `normalise`, so the mask is the forward pass's own.
private struct ReLUMask {
    let scale: Float, shift: Float
    @inline(__always) func passes(_ x: Float) -> Bool { x * scale + shift > 0 }
}

/// Sum and sum of squares of `n` floats, in double.
@inline(__always)
private func channelSums(_ x: UnsafePointer<Float>, _ n: Int) -> (Double, Double) {
    var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    var q0 = 0.0, q1 = 0.0, q2 = 0.0, q3 = 0.0
    var i = 0
    while i + 4 <= n {
        let a = Double(x[i]), b = Double(x[i + 1]), c = Double(x[i + 2]), d = Double(x[i + 3])
        s0 += a; s1 += b; s2 += c; s3 += d
        q0 += a * a; q1 += b * b; q2 += c * c; q3 += d * d
        i += 4
    }
    while i < n { let v = Double(x[i]); s0 += v; q0 += v * v; i += 1 }
    return ((s0 + s1) + (s2 + s3), (q0 + q1) + (q2 + q3))
}

/// Sums of dy and dy * xhat over a channel, dy masked by the ReLU (output > 0) when `relu`.
@inline(__always)
private func gradientSums(_ x: UnsafePointer<Float>, _ mask: ReLUMask, _ dy: UnsafePointer<Float>, _ n: Int,
                          _ mean: Float, _ invStd: Float, relu: Bool) -> (Double, Double) {
    var g0 = 0.0, g1 = 0.0, g2 = 0.0, g3 = 0.0
    var h0 = 0.0, h1 = 0.0, h2 = 0.0, h3 = 0.0
    @inline(__always) func terms(_ i: Int) -> (Double, Double) {
        let gi = Double(dy[i]), product = gi * Double((x[i] - mean) * invStd)
        if relu { return mask.passes(x[i]) ? (gi, product) : (0, 0) }
        return (gi, product)
    }
    var i = 0
    while i + 4 <= n {
        let a = terms(i), b = terms(i + 1), c = terms(i + 2), d = terms(i + 3)
        g0 += a.0; g1 += b.0; g2 += c.0; g3 += d.0
        h0 += a.1; h1 += b.1; h2 += c.1; h3 += d.1
        i += 4
    }
    while i < n { let t = terms(i); g0 += t.0; h0 += t.1; i += 1 }
    return ((g0 + g1) + (g2 + g3), (h0 + h1) + (h2 + h3))
}

/// dx = k * (dy - mean(dy) - xhat * mean(dy * xhat)), dy masked by the ReLU when `relu`; added to dx or stored.
@inline(__always)
private func inputGradient(_ x: UnsafePointer<Float>, _ mask: ReLUMask, _ dy: UnsafePointer<Float>,
                           _ dx: UnsafeMutablePointer<Float>, _ n: Int, _ mean: Float, _ invStd: Float,
                           _ k: Float, _ mg: Float, _ mgx: Float, relu: Bool, accumulate: Bool) {
    // Four voxels at a time (SSE, the baseline every x86-64 has), the same float operations per voxel as the
    // scalar tail, so the result does not depend on where the vector part ends.
    typealias F4 = SIMD4<Float>
    @inline(__always) func load(_ p: UnsafePointer<Float>, _ i: Int) -> F4 {
        UnsafeRawPointer(p + i).loadUnaligned(as: F4.self)
    }
    let vm = F4(repeating: mean), vs = F4(repeating: invStd), vk = F4(repeating: k)
    let vmg = F4(repeating: mg), vmgx = F4(repeating: mgx), zero = F4(repeating: 0)
    let vscale = F4(repeating: mask.scale), vshift = F4(repeating: mask.shift)
    var i = 0
    while i + 4 <= n {
        var gi = load(dy, i)
        let xi = load(x, i)
        if relu { gi = zero.replacing(with: gi, where: xi * vscale + vshift .> zero) }  // ReLUMask.passes per lane
        let xhat = (xi - vm) * vs
        var v = vk * (gi - vmg - xhat * vmgx)
        if accumulate { v = load(dx, i) + v }
        UnsafeMutableRawPointer(dx + i).storeBytes(of: v, as: F4.self)
        i += 4
    }
    while i < n {
        let d = dy[i]
        let gi: Float = relu ? (mask.passes(x[i]) ? d : 0) : d
        let xhat = (x[i] - mean) * invStd
        let v = k * (gi - mg - xhat * mgx)
        if accumulate { dx[i] += v } else { dx[i] = v }
        i += 1
    }
}
