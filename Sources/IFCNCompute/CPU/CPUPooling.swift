import Foundation
import IFCNSupport

// Max pooling, nearest upsampling and global max pooling, parallel over channel slices; small volumes
// (the deepest levels of a small patch) run on the calling thread, where a parallel region costs more than the work.

extension CPUBackend {
    /// Parts for a pooling-type loop over `jobs` slices touching `elements` floats in all.
    @inline(__always)
    func slicedParts(jobs: Int, elements: Int) -> Int {
        elements >= 1 << 15 ? min(threads, jobs) : 1
    }
}

extension CPUBackend {
    public func maxPool2Forward(input: TensorRef, output: TensorRef, channels: Int, extent e: Extent3) {
        defer { roundToFormat(output) }
        let x = input.host, y = output.host
        let o = e.halved, H = e.h, W = e.w, V = e.voxels, OV = o.voxels
        let jobs = channels * o.d
        let parts = slicedParts(jobs: jobs, elements: channels * V)
        parallelFor(parts: parts) { t in
            for job in partRange(t, of: parts, total: jobs) {
                let c = job / o.d, oz = job % o.d
                let xc = x + c * V, yc = y + c * OV
                for oy in 0..<o.h {
                    for ox in 0..<o.w {
                        var m = -Float.infinity
                        for dz in 0..<2 {
                            for dy in 0..<2 {
                                let row = xc + ((2 * oz + dz) * H + 2 * oy + dy) * W + 2 * ox
                                for dx in 0..<2 {
                                    let v = row[dx]
                                    if v > m || v.isNaN { m = v }
                                }
                            }
                        }
                        yc[(oz * o.h + oy) * o.w + ox] = m
                    }
                }
            }
        }
    }

    public func maxPool2Backward(input: TensorRef, output: TensorRef, gradOutput: TensorRef, gradInput: TensorRef,
                                 channels: Int, extent e: Extent3, accumulate: Bool) {
        defer { roundToFormat(gradInput) }
        let x = input.host, dy = gradOutput.host, dx = gradInput.host
        let o = e.halved, H = e.h, W = e.w, V = e.voxels, OV = o.voxels
        let jobs = channels * o.d
        let parts = slicedParts(jobs: jobs, elements: channels * V)
        parallelFor(parts: parts) { t in
            for job in partRange(t, of: parts, total: jobs) {
                let c = job / o.d, oz = job % o.d
                let xc = x + c * V, dxc = dx + c * V, dyc = dy + c * OV
                for oy in 0..<o.h {
                    for ox in 0..<o.w {
                        var m = -Float.infinity, arg = -1
                        for dz in 0..<2 {
                            for dyy in 0..<2 {
                                let rowIndex = ((2 * oz + dz) * H + 2 * oy + dyy) * W + 2 * ox
                                for dxx in 0..<2 {
                                    let v = xc[rowIndex + dxx]
                                    if arg < 0 || v > m || v.isNaN { m = v; arg = rowIndex + dxx }
                                    if !accumulate { dxc[rowIndex + dxx] = 0 }
                                }
                            }
                        }
                        dxc[arg] += dyc[(oz * o.h + oy) * o.w + ox]
                    }
                }
            }
        }
    }

    public func upsample2Forward(input: TensorRef, output: TensorRef, channels: Int, extent e: Extent3) {
        defer { roundToFormat(output) }
        let x = input.host, y = output.host
        let u = e.doubled, V = e.voxels, UV = u.voxels
        let jobs = channels * u.d
        let parts = slicedParts(jobs: jobs, elements: channels * UV)
        parallelFor(parts: parts) { t in
            for job in partRange(t, of: parts, total: jobs) {
                let c = job / u.d, z = job % u.d
                for yy in 0..<u.h {
                    let src = x + c * V + ((z / 2) * e.h + yy / 2) * e.w
                    let dst = y + c * UV + (z * u.h + yy) * u.w
                    for xx in 0..<e.w { let v = src[xx]; dst[2 * xx] = v; dst[2 * xx + 1] = v }
                }
            }
        }
    }

    public func upsample2Backward(gradOutput: TensorRef, gradInput: TensorRef, channels: Int, extent e: Extent3,
                                  accumulate: Bool) {
        defer { roundToFormat(gradInput) }
        let dy = gradOutput.host, dx = gradInput.host
        let u = e.doubled, V = e.voxels, UV = u.voxels
        let jobs = channels * e.d
        let parts = slicedParts(jobs: jobs, elements: channels * UV)
        parallelFor(parts: parts) { t in
            for job in partRange(t, of: parts, total: jobs) {
                let c = job / e.d, z = job % e.d
                for yy in 0..<e.h {
                    let dst = dx + c * V + (z * e.h + yy) * e.w
                    let r00 = dy + c * UV + ((2 * z) * u.h + 2 * yy) * u.w
                    let r01 = r00 + u.w, r10 = r00 + u.h * u.w, r11 = r10 + u.w
                    for xx in 0..<e.w {
                        let a = r00[2 * xx] + r00[2 * xx + 1] + r01[2 * xx] + r01[2 * xx + 1]
                        let b = r10[2 * xx] + r10[2 * xx + 1] + r11[2 * xx] + r11[2 * xx + 1]
                        if accumulate { dst[xx] += a + b } else { dst[xx] = a + b }
                    }
                }
            }
        }
    }

    public func globalMaxForward(input: TensorRef, output: TensorRef, channels: Int, voxels: Int) {
        defer { roundToFormat(output) }
        let x = input.host, y = output.host
        for c in 0..<channels {
            var m = -Float.infinity
            let xc = x + c * voxels
            for i in 0..<voxels where xc[i] > m || xc[i].isNaN { m = xc[i] }
            y[c] = m
        }
    }

    public func globalMaxBackward(input: TensorRef, output: TensorRef, gradOutput: TensorRef, gradInput: TensorRef,
                                  channels: Int, voxels: Int, accumulate: Bool) {
        defer { roundToFormat(gradInput) }
        let x = input.host, y = output.host, dy = gradOutput.host, dx = gradInput.host
        for c in 0..<channels {
            let xc = x + c * voxels, dxc = dx + c * voxels
            var ties = 0
            for i in 0..<voxels where xc[i] == y[c] { ties += 1 }
            let share = dy[c] / Float(max(ties, 1))
            for i in 0..<voxels {
                let v: Float = xc[i] == y[c] ? share : 0
                if accumulate { dxc[i] += v } else { dxc[i] = v }
            }
        }
    }
}
