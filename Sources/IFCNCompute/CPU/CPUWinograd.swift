import COpenBLAS
import Foundation
import IFCNSupport

// 3x3x3 convolutions by 3D Winograd minimal filtering (Lavin & Gray 2016), F(m x m x m, 3x3x3) with
// n = m + 2: the output is cut into m^3 tiles; each needs an n^3 input tile (zero outside the volume).
// With V = B^T d B (input tiles), U = G g G^T (kernels) and M = U . V taken per transformed component
// as a sum over input channels, the output tile is A^T M A. The n^3 channel sums are n^3 sgemms
// [cout x cin] x [cin x tiles]: F(2,3) does 64 multiplications per 8 outputs where direct convolution
// does 216 (3.4x fewer), F(4,3) 216 per 64 (8x fewer), at the price of the transforms and some rounding.
//
// Work is split statically over "tile rows" (fixed tile z, y; all tile x), like conv3's im2col chunks:
// each thread owns a contiguous range of tile rows and its own scratch, processed in chunks of a few
// tile rows so the transformed chunk stays near the core's L2. All transforms run along whole rows
// (x contiguous), so the inner loops vectorize.

/// How `conv3` computes a 3x3x3 convolution on the CPU.
public enum ConvolutionAlgorithm: String, CaseIterable, Sendable {
    /// Chunked im2col + sgemm: exact to sgemm rounding, best for few channels or tiny extents.
    case im2col
    /// Winograd F(2x2x2, 3x3x3): 4^3 tiles, 3.4x fewer multiplications.
    case winograd
    /// Winograd F(4x4x4, 3x3x3): 6^3 tiles, 8x fewer multiplications, larger rounding error.
    case winograd4

    /// The environment variable that overrides the per-shape rule (benchmarks, tests).
    public static let environmentKey = "IFCN_CONV_ALGORITHM"

    /// The override in `environment`, nil when unset or empty; throws on a value that names no algorithm.
    public static func override(in environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ConvolutionAlgorithm? {
        guard let value = environment[environmentKey], !value.isEmpty else { return nil }
        guard let algorithm = ConvolutionAlgorithm(rawValue: value) else {
            throw ConvolutionAlgorithmError(message: "\(environmentKey)='\(value)' is not one of "
                + allCases.map(\.rawValue).joined(separator: ", "))
        }
        return algorithm
    }

    /// The process's override, read once. A bad value stops the process with its message (the backend
    /// factory checks it first, so commands fail before they start).
    static let processOverride: ConvolutionAlgorithm? = {
        do { return try override() } catch {
            StandardError.write("error: \(error)")
            exit(2)
        }
    }()

    /// The fixed per-shape rule: im2col for every shape. Winograd F(2,3) and F(4,3), as implemented here,
    /// were slower than im2col at every measured shape on the 2-core Zen with AVX2 (their transforms cost
    /// about as much as their smaller sgemms, which run less efficiently than im2col's K = 27 * cin ones):
    /// they stay available through `IFCN_CONV_ALGORITHM` for measurement on other machines.
    public static func rule(inChannels: Int, outChannels: Int, extent: Extent3) -> ConvolutionAlgorithm {
        .im2col
    }

    /// The override if set, else the rule.
    static func choose(inChannels: Int, outChannels: Int, extent: Extent3) -> ConvolutionAlgorithm {
        processOverride ?? rule(inChannels: inChannels, outChannels: outChannels, extent: extent)
    }

    /// The Winograd transform of this algorithm, nil for im2col.
    var winogradTransform: WinogradTransform? {
        switch self {
        case .im2col: nil
        case .winograd: .f2
        case .winograd4: .f4
        }
    }
}

public struct ConvolutionAlgorithmError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// The 1D matrices of F(m, 3): B^T (n x n), G (n x 3), A^T (m x n), row-major.
struct WinogradTransform: Sendable {
    let m: Int
    let bt: [Float]
    let g: [Double]
    let at: [Float]
    var n: Int { m + 2 }

    static let f2 = WinogradTransform(
        m: 2,
        bt: [1, 0, -1, 0,
             0, 1, 1, 0,
             0, -1, 1, 0,
             0, 1, 0, -1],
        g: [1, 0, 0,
            0.5, 0.5, 0.5,
            0.5, -0.5, 0.5,
            0, 0, 1],
        at: [1, 1, 1, 0,
             0, 1, -1, -1])

    static let f4 = WinogradTransform(
        m: 4,
        bt: [4, 0, -5, 0, 1, 0,
             0, -4, -4, 1, 1, 0,
             0, 4, -4, -1, 1, 0,
             0, -2, -1, 2, 1, 0,
             0, 2, -1, -2, 1, 0,
             0, 4, 0, -5, 0, 1],
        g: [1.0 / 4, 0, 0,
            -1.0 / 6, -1.0 / 6, -1.0 / 6,
            -1.0 / 6, 1.0 / 6, -1.0 / 6,
            1.0 / 24, 1.0 / 12, 1.0 / 6,
            1.0 / 24, -1.0 / 12, 1.0 / 6,
            0, 0, 1],
        at: [1, 1, 1, 1, 1, 0,
             0, 1, -1, 2, -2, 0,
             0, 1, 1, 4, 4, 0,
             0, 1, -1, 8, -8, 1])
}

/// dst[x] = sum_j coef[j] * source(j)[x] for x in 0..<count (zero coefficients skipped).
@inline(__always)
private func combine(_ dst: UnsafeMutablePointer<Float>, _ coef: UnsafePointer<Float>, terms: Int, count: Int,
                     _ source: (Int) -> UnsafeMutablePointer<Float>) {
    var first = true
    for j in 0..<terms {
        let c = coef[j]
        if c == 0 { continue }
        let s = source(j)
        if first { for x in 0..<count { dst[x] = c * s[x] } } else { for x in 0..<count { dst[x] += c * s[x] } }
        first = false
    }
    if first { for x in 0..<count { dst[x] = 0 } }
}

extension CPUBackend {
    /// Bytes of transformed input and output per chunk: they stay in the core's L2 (1 MiB on the
    /// measured Zen; larger chunks went to L3 and made the transforms memory bound).
    static let winogradChunkBytes = 512 * 1024

    /// U[xi][co][ci] = (G g[co][ci] G^T)[xi] for the n^3 components xi, in float64 then rounded.
    func winogradKernels(_ t: WinogradTransform, weight: UnsafePointer<Float>, cin: Int, cout: Int,
                         into u: UnsafeMutablePointer<Float>) {
        let n = t.n, g = t.g
        let parts = min(threads, cout)
        parallelFor(parts: parts) { part in
            var a = [Double](repeating: 0, count: n * 9), b = [Double](repeating: 0, count: n * n * 3)
            for co in partRange(part, of: parts, total: cout) {
                for ci in 0..<cin {
                    let w = weight + (co * cin + ci) * 27
                    // a[i][ky][kx] = sum_kz G[i][kz] w[kz][ky][kx]
                    for i in 0..<n {
                        for k in 0..<9 {
                            a[i * 9 + k] = g[i * 3] * Double(w[k]) + g[i * 3 + 1] * Double(w[9 + k]) + g[i * 3 + 2] * Double(w[18 + k])
                        }
                    }
                    // b[i][j][kx] = sum_ky G[j][ky] a[i][ky][kx]
                    for i in 0..<n {
                        for j in 0..<n {
                            for kx in 0..<3 {
                                b[(i * n + j) * 3 + kx] = g[j * 3] * a[i * 9 + kx] + g[j * 3 + 1] * a[i * 9 + 3 + kx]
                                    + g[j * 3 + 2] * a[i * 9 + 6 + kx]
                            }
                        }
                    }
                    // U[i][j][l] = sum_kx G[l][kx] b[i][j][kx]
                    for ij in 0..<(n * n) {
                        for l in 0..<n {
                            let v = g[l * 3] * b[ij * 3] + g[l * 3 + 1] * b[ij * 3 + 1] + g[l * 3 + 2] * b[ij * 3 + 2]
                            u[((ij * n + l) * cout + co) * cin + ci] = Float(v)
                        }
                    }
                }
            }
        }
    }

    /// out = beta * out + conv3(input, weight) (+ bias), by Winograd F(m, 3) (see the file comment).
    func conv3Winograd(_ t: WinogradTransform, input: UnsafePointer<Float>, cin: Int, extent e: Extent3,
                       weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                       output: UnsafeMutablePointer<Float>, cout: Int, beta: Float) {
        let m = t.m, n = t.n, nn = n * n, n3 = nn * n
        let D = e.d, H = e.h, W = e.w, V = e.voxels
        let tilesZ = (D + m - 1) / m, tilesY = (H + m - 1) / m, tilesX = (W + m - 1) / m
        let tileRows = tilesZ * tilesY
        // A chunk is `rowsPerChunk` whole tile rows, or one of `segments` near-equal pieces of one tile row.
        let chunkTiles = max(4, Self.winogradChunkBytes / (n3 * (cin + cout) * 4))
        let segments = (tilesX + chunkTiles - 1) / chunkTiles
        let rowsPerChunk = segments > 1 ? 1 : max(1, min(tileRows, chunkTiles / tilesX))
        let maxTiles = segments > 1 ? (tilesX + segments - 1) / segments : rowsPerChunk * tilesX
        // Rows are stored by phase: input x = x0 + m * k + q at [q * (width + 1) + k], output x = m * t + i
        // at [i * width + t], so every transform step is a contiguous loop.
        let padded = m * (maxTiles + 1)
        // Component strides padded by 16 floats so the n^3 streams do not share cache sets.
        let vStride = cin * maxTiles + 16, mStride = cout * maxTiles + 16

        let u = UnsafeMutablePointer<Float>.allocate(capacity: n3 * cout * cin)
        defer { u.deallocate() }
        winogradKernels(t, weight: weight, cin: cin, cout: cout, into: u)

        let vCount = n3 * vStride, mCount = n3 * mStride, rowCount = 3 * nn * padded
        let parts = min(threads, tileRows)
        let buffers = scratch.reserve(vCount + mCount + rowCount)
        t.bt.withUnsafeBufferPointer { btb in
        t.at.withUnsafeBufferPointer { atb in
            let bt = btb.baseAddress!, at = atb.baseAddress!
            parallelFor(parts: parts) { part in
                let vBuf = buffers[part], mBuf = vBuf + vCount
                let rows = mBuf + mCount, rowsB = rows + nn * padded, rowsC = rowsB + nn * padded
                let range = partRange(part, of: parts, total: tileRows)
                var r0 = range.lowerBound
                while r0 < range.upperBound {
                    let r1 = min(r0 + rowsPerChunk, range.upperBound)
                    for segment in 0..<segments {
                        let tx = partRange(segment, of: segments, total: tilesX)
                        let width = tx.count, nt = (r1 - r0) * width
                        let len = m * width + 2, phase = width + 1, stride = m * phase
                        let x0 = m * tx.lowerBound - 1  // input x of local position 0
                        // Input transform: V[xi][ci][tile].
                        for ci in 0..<cin {
                            let src = input + ci * V
                            for r in r0..<r1 {
                                let z0 = (r / tilesY) * m - 1, y0 = (r % tilesY) * m - 1
                                // rows[iz][iy] = input[z0 + iz][y0 + iy][x0 ..< x0 + len] by phase, zero outside.
                                for iz in 0..<n {
                                    for iy in 0..<n {
                                        let d = rows + (iz * n + iy) * stride
                                        let z = z0 + iz, y = y0 + iy
                                        if z < 0 || z >= D || y < 0 || y >= H {
                                            memset(d, 0, stride * 4)
                                            continue
                                        }
                                        let line = src + (z * H + y) * W
                                        for q in 0..<m {
                                            // k with 0 <= x0 + q + m * k < W and q + m * k < len; zero elsewhere.
                                            let dq = d + q * phase, first = x0 + q
                                            let k0 = first >= 0 ? 0 : (m - 1 - first) / m
                                            let k1 = max(k0, min(phase, (W - first + m - 1) / m, (len - q + m - 1) / m))
                                            for k in 0..<k0 { dq[k] = 0 }
                                            let s = line + first
                                            for k in k0..<k1 { dq[k] = s[m * k] }
                                            for k in k1..<phase { dq[k] = 0 }
                                        }
                                    }
                                }
                                // z: rowsB[a][iy] = sum_iz BT[a][iz] rows[iz][iy] (all iy at once)
                                for a in 0..<n {
                                    combine(rowsB + a * n * stride, bt + a * n, terms: n, count: n * stride) { rows + $0 * n * stride }
                                }
                                // y: rowsC[a][b] = sum_iy BT[b][iy] rowsB[a][iy]
                                for a in 0..<n {
                                    for b in 0..<n {
                                        combine(rowsC + (a * n + b) * stride, bt + b * n, terms: n, count: stride) {
                                            rowsB + (a * n + $0) * stride
                                        }
                                    }
                                }
                                // x: V[a][b][c][ci][tile] = sum_j BT[c][j] rowsC[a][b][m * tile + j]
                                let offset = (r - r0) * width
                                for ab in 0..<nn {
                                    let row = rowsC + ab * stride
                                    for c in 0..<n {
                                        combine(vBuf + (ab * n + c) * vStride + ci * nt + offset, bt + c * n, terms: n,
                                                count: width) { row + ($0 % m) * phase + $0 / m }
                                    }
                                }
                            }
                        }
                        // The n^3 channel sums: M[xi] = U[xi] V[xi].
                        for xi in 0..<n3 {
                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(cout), Int32(nt), Int32(cin),
                                        1, u + xi * cout * cin, Int32(cin), vBuf + xi * vStride, Int32(nt),
                                        0, mBuf + xi * mStride, Int32(nt))
                        }
                        // Output transform: out = beta * out + A^T M A (+ bias).
                        let outX = m * tx.lowerBound, outCount = min(W, m * tx.upperBound) - outX
                        let outStride = m * width
                        for co in 0..<cout {
                            let dst = output + co * V
                            let b = bias?[co] ?? 0
                            for r in r0..<r1 {
                                let offset = (r - r0) * width
                                // x: rows[a][b][i][tile] = sum_c AT[i][c] M[a][b][c][co][tile]
                                for ab in 0..<nn {
                                    let mm = mBuf + ab * n * mStride + co * nt + offset
                                    for i in 0..<m {
                                        combine(rows + ab * outStride + i * width, at + i * n, terms: n, count: width) {
                                            mm + $0 * mStride
                                        }
                                    }
                                }
                                // y: rowsB[a][i] = sum_b AT[i][b] rows[a][b]
                                for a in 0..<n {
                                    for i in 0..<m {
                                        combine(rowsB + (a * m + i) * outStride, at + i * n, terms: n, count: outStride) {
                                            rows + (a * n + $0) * outStride
                                        }
                                    }
                                }
                                // z: rowsC[iz][iy] = sum_a AT[iz][a] rowsB[a][iy] (all iy at once)
                                for iz in 0..<m {
                                    combine(rowsC + iz * m * outStride, at + iz * n, terms: n, count: m * outStride) {
                                        rowsB + $0 * m * outStride
                                    }
                                }
                                // Into the output rows inside the volume.
                                let z0 = (r / tilesY) * m, y0 = (r % tilesY) * m
                                for iz in 0..<m where z0 + iz < D {
                                    for iy in 0..<m where y0 + iy < H {
                                        let o = rowsC + (iz * m + iy) * outStride
                                        let d = dst + ((z0 + iz) * H + y0 + iy) * W + outX
                                        for i in 0..<m {
                                            let oi = o + i * width
                                            var x = i, t = 0
                                            if beta == 0 {
                                                while x < outCount { d[x] = oi[t] + b; x += m; t += 1 }
                                            } else {
                                                while x < outCount { d[x] = beta * d[x] + oi[t] + b; x += m; t += 1 }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    r0 = r1
                }
            }
        }
        }
    }
}
