import Foundation
@testable import IFCNCompute
import IFCNEngine
import XCTest

/// The 3x3x3 convolutions of every CPU algorithm (im2col + sgemm; where the CPU has AVX2 and FMA, the
/// direct and Winograd kernels of CConvKernels) against a float64 loop written out here: forward
/// (bias, beta 0 and 1), backward data (accumulate or not) and backward weight (+ bias), at row widths
/// 8 to 40 with channel counts that leave every remainder of the kernels' 3- and 4-channel blocks,
/// for 1 to 3 threads. Each algorithm runs the shapes it handles (Winograd F(2,3): even depth and height,
/// width a multiple of 16; F(4,3): depth and height multiples of 4, width a multiple of 32).
final class ConvolutionAlgorithmTests: XCTestCase {
    struct Shape: CustomStringConvertible {
        var cin: Int, cout: Int, extent: Extent3
        var description: String { "cin \(cin) cout \(cout) \(extent)" }
    }

    static let shapes = [
        Shape(cin: 1, cout: 1, extent: Extent3(2, 3, 8)),
        Shape(cin: 2, cout: 16, extent: Extent3(cube: 8)),
        Shape(cin: 16, cout: 2, extent: Extent3(4, 5, 16)),
        Shape(cin: 5, cout: 7, extent: Extent3(3, 9, 24)),
        Shape(cin: 17, cout: 4, extent: Extent3(5, 4, 32)),
        Shape(cin: 37, cout: 10, extent: Extent3(3, 3, 16)),
        Shape(cin: 8, cout: 11, extent: Extent3(9, 2, 40)),
        Shape(cin: 5, cout: 7, extent: Extent3(4, 6, 16)),
        Shape(cin: 2, cout: 16, extent: Extent3(2, 4, 32)),
        Shape(cin: 33, cout: 40, extent: Extent3(6, 4, 32)),
        Shape(cin: 37, cout: 1, extent: Extent3(2, 2, 16)),
        Shape(cin: 3, cout: 5, extent: Extent3(4, 4, 32)),
        Shape(cin: 33, cout: 40, extent: Extent3(4, 8, 32)),
        Shape(cin: 6, cout: 4, extent: Extent3(8, 4, 64)),
    ]

    /// Relative L2 distance allowed: float32 rounding of sums of up to 27 x 37 terms is ~1e-7 x sqrt(1000).
    /// Winograd F(4,3), whose transforms multiply by up to 5 per axis and by up to 8 on the way back, comes
    /// closest: at most 5.3e-6 here (backward data, 33 x 40 channels); the others stay near 1e-7.
    let bound = 1e-5

    /// Float64 reference: forward y (without bias), and for gradient g of y: dX and dW.
    struct Reference {
        var y: [Double], dx: [Double], dw: [Double]
    }

    func reference(_ s: Shape, x: [Float], w: [Float], g: [Float]) -> Reference {
        let e = s.extent, V = e.voxels
        var y = [Double](repeating: 0, count: s.cout * V), dx = [Double](repeating: 0, count: s.cin * V)
        var dw = [Double](repeating: 0, count: s.cout * s.cin * 27)
        for co in 0..<s.cout {
            for z in 0..<e.d {
                for yy in 0..<e.h {
                    for xx in 0..<e.w {
                        let o = co * V + (z * e.h + yy) * e.w + xx
                        var sum = 0.0
                        for ci in 0..<s.cin {
                            for k in 0..<27 {
                                let sz = z + k / 9 - 1, sy = yy + (k / 3) % 3 - 1, sx = xx + k % 3 - 1
                                guard sz >= 0, sz < e.d, sy >= 0, sy < e.h, sx >= 0, sx < e.w else { continue }
                                let i = ci * V + (sz * e.h + sy) * e.w + sx, wi = (co * s.cin + ci) * 27 + k
                                sum += Double(w[wi]) * Double(x[i])
                                dx[i] += Double(w[wi]) * Double(g[o])
                                dw[wi] += Double(g[o]) * Double(x[i])
                            }
                        }
                        y[o] = sum
                    }
                }
            }
        }
        return Reference(y: y, dx: dx, dw: dw)
    }

    func relativeL2(_ a: [Float], _ b: [Double]) -> Double {
        var num = 0.0, den = 0.0
        for (x, y) in zip(a, b) {
            num += (Double(x) - y) * (Double(x) - y)
            den += y * y
        }
        return (num / max(den, 1e-300)).squareRoot()
    }

    /// Runs forward, backward data and backward weight with `algorithm` and checks them against the reference.
    func check(_ algorithm: ConvolutionAlgorithm, _ s: Shape, threads: Int, seed: UInt64,
               plant: (inout [Float]) -> Void = { _ in }, file: StaticString = #filePath, line: UInt = #line) -> [Double] {
        var rng = SeededGenerator(seed: seed)
        let V = s.extent.voxels
        let x = randomValues(s.cin * V, &rng), w = randomValues(s.cout * s.cin * 27, &rng, scale: 0.2)
        let bias = randomValues(s.cout, &rng), g = randomValues(s.cout * V, &rng)
        let y0 = randomValues(s.cout * V, &rng), dx0 = randomValues(s.cin * V, &rng)
        let ref = reference(s, x: x, w: w, g: g)
        let b = CPUBackend(threads: threads), h = Host(backend: b)
        var distances: [Double] = []

        // Forward, beta 1 with bias: y = y0 + conv + bias.
        let y = h.tensor(y0), xt = h.tensor(x), wt = h.tensor(w), bt = h.tensor(bias)
        b.conv3(input: xt.host, cin: s.cin, extent: s.extent, weight: wt.host, bias: bt.host, output: y.host,
                cout: s.cout, beta: 1, algorithm: algorithm)
        var got = h.read(y)
        plant(&got)
        let want = (0..<(s.cout * V)).map { ref.y[$0] + Double(y0[$0]) + Double(bias[$0 / V]) }
        distances.append(relativeL2(got, want))
        // Forward, beta 0, no bias.
        b.conv3(input: xt.host, cin: s.cin, extent: s.extent, weight: wt.host, bias: nil, output: y.host,
                cout: s.cout, beta: 0, algorithm: algorithm)
        distances.append(relativeL2(h.read(y), ref.y))
        // Backward data, overwriting and accumulating.
        let dx = h.tensor(dx0), gt = h.tensor(g)
        b.conv3BackwardData(gradOutput: gt, outChannels: s.cout, extent: s.extent, weight: wt, gradInput: dx,
                            inChannels: s.cin, accumulate: false, algorithm: algorithm)
        distances.append(relativeL2(h.read(dx), ref.dx))
        b.conv3BackwardData(gradOutput: gt, outChannels: s.cout, extent: s.extent, weight: wt, gradInput: dx,
                            inChannels: s.cin, accumulate: true, algorithm: algorithm)
        distances.append(relativeL2(h.read(dx), ref.dx.map { 2 * $0 }))
        // Backward weight and bias, accumulated into what is there.
        let dw = h.tensor([Float](repeating: 0.5, count: w.count)), db = h.zeros(s.cout)
        b.conv3BackwardWeight(input: xt, inChannels: s.cin, extent: s.extent, gradOutput: gt, outChannels: s.cout,
                              gradWeight: dw, gradBias: db, algorithm: algorithm)
        distances.append(relativeL2(h.read(dw), ref.dw.map { $0 + 0.5 }))
        let dbWant = (0..<s.cout).map { co in (0..<V).reduce(0.0) { $0 + Double(g[co * V + $1]) } }
        distances.append(relativeL2(h.read(db), dbWant))
        return distances
    }

    func assertMatches(_ algorithm: ConvolutionAlgorithm) {
        for (i, s) in Self.shapes.enumerated() where algorithm.handles(s.extent) {
            for threads in [1, 2, 3] {
                let d = check(algorithm, s, threads: threads, seed: UInt64(40 + i))
                for (name, value) in zip(["forward", "forward beta 0", "backward data", "backward data accumulated",
                                          "weight gradient", "bias gradient"], d) {
                    XCTAssertLessThan(value, bound, "\(algorithm) \(name) at \(s), \(threads) threads")
                }
            }
        }
    }

    func testIm2colMatchesReference() {
        assertMatches(.im2col)
    }

    func testDirectMatchesReference() throws {
        try XCTSkipUnless(ConvolutionAlgorithm.directKernelsSupported, "this CPU has no AVX2 + FMA")
        assertMatches(.direct)
    }

    func testWinogradMatchesReference() throws {
        try XCTSkipUnless(ConvolutionAlgorithm.directKernelsSupported, "this CPU has no AVX2 + FMA")
        XCTAssertEqual(Self.shapes.filter { ConvolutionAlgorithm.winograd.handles($0.extent) }.count, 7)
        assertMatches(.winograd)
    }

    func testWinograd4MatchesReference() throws {
        try XCTSkipUnless(ConvolutionAlgorithm.directKernelsSupported, "this CPU has no AVX2 + FMA")
        XCTAssertEqual(Self.shapes.filter { ConvolutionAlgorithm.winograd4.handles($0.extent) }.count, 3)
        assertMatches(.winograd4)
    }

    /// The bound catches one output off by 1e-3 of the output's scale.
    func testPlantedErrorIsCaught() {
        let s = Self.shapes[3]
        let d = check(.im2col, s, threads: 2, seed: 7) { out in out[out.count / 3] += 1e-3 * 3 }
        XCTAssertGreaterThan(d[0], bound)
    }

    /// Same inputs, same threads: the same bits (the weight gradient's sums are per thread, in a fixed order).
    func testDirectIsDeterministic() throws {
        try XCTSkipUnless(ConvolutionAlgorithm.directKernelsSupported, "this CPU has no AVX2 + FMA")
        let s = Shape(cin: 16, cout: 16, extent: Extent3(6, 7, 32))
        var rng = SeededGenerator(seed: 3)
        let x = randomValues(s.cin * s.extent.voxels, &rng), g = randomValues(s.cout * s.extent.voxels, &rng)
        func weightGradient() -> [Float] {
            let b = CPUBackend(threads: 2), h = Host(backend: b)
            let dw = h.zeros(s.cout * s.cin * 27)
            b.conv3BackwardWeight(input: h.tensor(x), inChannels: s.cin, extent: s.extent, gradOutput: h.tensor(g),
                                  outChannels: s.cout, gradWeight: dw, gradBias: nil, algorithm: .direct)
            return h.read(dw)
        }
        XCTAssertEqual(weightGradient(), weightGradient())
    }

    func testRulePicksTheKernelsWhereTheyRun() throws {
        func rule(_ cin: Int, _ cout: Int, _ e: Extent3, _ supported: Bool = true,
                  _ purpose: ConvolutionAlgorithm.Purpose = .inference) -> ConvolutionAlgorithm {
            ConvolutionAlgorithm.rule(inChannels: cin, outChannels: cout, extent: e, purpose: purpose, kernelsSupported: supported)
        }
        XCTAssertEqual(rule(64, 64, Extent3(cube: 32)), .winograd4)
        XCTAssertEqual(rule(128, 64, Extent3(cube: 128)), .winograd4)
        XCTAssertEqual(rule(128, 64, Extent3(cube: 16)), .winograd)
        XCTAssertEqual(rule(64, 64, Extent3(6, 8, 32)), .winograd)
        XCTAssertEqual(rule(64, 64, Extent3(cube: 32), true, .training), .direct)
        XCTAssertEqual(rule(64, 32, Extent3(cube: 32), true, .backwardData), .winograd)
        XCTAssertEqual(rule(64, 64, Extent3(cube: 8), true, .backwardData), .direct)
        XCTAssertEqual(rule(16, 64, Extent3(cube: 32), true, .backwardData), .direct)
        XCTAssertEqual(rule(16, 16, Extent3(cube: 32), true, .training), .direct)
        XCTAssertEqual(rule(64, 64, Extent3(cube: 8)), .direct)
        XCTAssertEqual(rule(16, 16, Extent3(cube: 32)), .direct)
        XCTAssertEqual(rule(2, 64, Extent3(cube: 64)), .direct)
        XCTAssertEqual(rule(64, 64, Extent3(cube: 4)), .im2col)
        XCTAssertEqual(rule(16, 16, Extent3(5, 6, 12)), .im2col)
        XCTAssertEqual(rule(64, 64, Extent3(cube: 32), false), .im2col)
        // A forced algorithm falls back to direct, then im2col, where it does not run.
        func forced(_ a: ConvolutionAlgorithm, _ e: Extent3) -> ConvolutionAlgorithm {
            ConvolutionAlgorithm.choose(inChannels: 16, outChannels: 16, extent: e, forced: a)
        }
        XCTAssertEqual(forced(.winograd4, Extent3(cube: 32)), .winograd4)
        XCTAssertEqual(forced(.winograd4, Extent3(cube: 16)), .winograd)
        XCTAssertEqual(forced(.winograd4, Extent3(cube: 8)), .direct)
        XCTAssertEqual(forced(.winograd4, Extent3(cube: 4)), .im2col)
        XCTAssertEqual(forced(.winograd, Extent3(cube: 16)), .winograd)
        XCTAssertEqual(forced(.winograd, Extent3(cube: 8)), .direct)
        XCTAssertEqual(forced(.winograd, Extent3(cube: 4)), .im2col)
        XCTAssertEqual(forced(.direct, Extent3(cube: 4)), .im2col)
        XCTAssertEqual(forced(.im2col, Extent3(cube: 32)), .im2col)
        if ConvolutionAlgorithm.directKernelsSupported {
            XCTAssertEqual(try ConvolutionAlgorithm.override(in: ["IFCN_CONV_ALGORITHM": "direct"]), .direct)
        } else {
            XCTAssertThrowsError(try ConvolutionAlgorithm.override(in: ["IFCN_CONV_ALGORITHM": "direct"]))
        }
    }
}
