import Foundation
import IFCNSupport

// Batch norm over one sample: statistics per channel over its voxels. Each channel is
// reduced by one thread in a fixed order, so results do not depend on the thread count.

extension CPUBackend {
    public func batchNormTrainForward(input: TensorRef, output: TensorRef, channels: Int, voxels: Int,
                                      gamma: TensorRef, beta: TensorRef, runningMean: TensorRef, runningVar: TensorRef,
                                      savedMean: TensorRef, savedInvStd: TensorRef,
                                      momentum: Float, epsilon: Float, relu: Bool) {
        let x = input.host, y = output.host, g = gamma.host, b = beta.host
        let rm = runningMean.host, rv = runningVar.host, sm = savedMean.host, si = savedInvStd.host
        let n = voxels
        let parts = min(threads, channels)
        parallelFor(parts: parts) { t in
            for c in partRange(t, of: parts, total: channels) {
                let xc = x + c * n, yc = y + c * n
                var s = 0.0, ss = 0.0
                for i in 0..<n { let v = Double(xc[i]); s += v; ss += v * v }
                let mean = s / Double(n)
                let variance = max(ss / Double(n) - mean * mean, 0)
                let invStd = 1 / (variance + Double(epsilon)).squareRoot()
                sm[c] = Float(mean); si[c] = Float(invStd)
                let unbiased = n > 1 ? variance * Double(n) / Double(n - 1) : variance
                rm[c] = Float((1 - Double(momentum)) * Double(rm[c]) + Double(momentum) * mean)
                rv[c] = Float((1 - Double(momentum)) * Double(rv[c]) + Double(momentum) * unbiased)
                let scale = Float(Double(g[c]) * invStd)
                let shift = b[c] - Float(mean) * scale
                if relu {
                    for i in 0..<n { yc[i] = max(xc[i] * scale + shift, 0) }
                } else {
                    for i in 0..<n { yc[i] = xc[i] * scale + shift }
                }
            }
        }
    }

    public func batchNormEvalForward(input: TensorRef, output: TensorRef, channels: Int, voxels: Int,
                                     gamma: TensorRef, beta: TensorRef, runningMean: TensorRef, runningVar: TensorRef,
                                     epsilon: Float, relu: Bool) {
        let x = input.host, y = output.host, g = gamma.host, b = beta.host
        let rm = runningMean.host, rv = runningVar.host
        let n = voxels
        let parts = channels * n >= 1 << 15 ? min(threads, channels) : 1
        parallelFor(parts: parts) { t in
            for c in partRange(t, of: parts, total: channels) {
                let xc = x + c * n, yc = y + c * n
                let invStd = 1 / (Double(rv[c]) + Double(epsilon)).squareRoot()
                let scale = Float(Double(g[c]) * invStd)
                let shift = b[c] - rm[c] * scale
                if relu {
                    for i in 0..<n { yc[i] = max(xc[i] * scale + shift, 0) }
                } else {
                    for i in 0..<n { yc[i] = xc[i] * scale + shift }
                }
            }
        }
    }

    public func batchNormBackward(input: TensorRef, output: TensorRef, gradOutput: TensorRef, gradInput: TensorRef,
                                  channels: Int, voxels: Int, gamma: TensorRef, savedMean: TensorRef,
                                  savedInvStd: TensorRef, gradGamma: TensorRef, gradBeta: TensorRef,
                                  relu: Bool, accumulate: Bool) {
        let x = input.host, y = output.host, dy = gradOutput.host, dx = gradInput.host
        let g = gamma.host, sm = savedMean.host, si = savedInvStd.host
        let gg = gradGamma.host, gb = gradBeta.host
        let n = voxels
        let parts = min(threads, channels)
        parallelFor(parts: parts) { t in
            for c in partRange(t, of: parts, total: channels) {
                let xc = x + c * n, yc = y + c * n, dyc = dy + c * n, dxc = dx + c * n
                let mean = sm[c], invStd = si[c]
                var sg = 0.0, sgx = 0.0
                if relu {
                    for i in 0..<n where yc[i] > 0 {
                        let gi = Double(dyc[i])
                        sg += gi; sgx += gi * Double((xc[i] - mean) * invStd)
                    }
                } else {
                    for i in 0..<n {
                        let gi = Double(dyc[i])
                        sg += gi; sgx += gi * Double((xc[i] - mean) * invStd)
                    }
                }
                gg[c] += Float(sgx)
                gb[c] += Float(sg)
                let k = g[c] * invStd
                let mg = Float(sg / Double(n)), mgx = Float(sgx / Double(n))
                for i in 0..<n {
                    let gi: Float = relu ? (yc[i] > 0 ? dyc[i] : 0) : dyc[i]
                    let xhat = (xc[i] - mean) * invStd
                    let v = k * (gi - mg - xhat * mgx)
                    if accumulate { dxc[i] += v } else { dxc[i] = v }
                }
            }
        }
    }
}
