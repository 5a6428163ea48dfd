import Foundation
@testable import IFCNCompute
import IFCNEngine
import XCTest

/// The Winograd convolutions (CPUWinograd.swift) against the im2col one on random data.
final class WinogradTests: XCTestCase {
    struct Shape {
        var cin: Int, cout: Int, extent: Extent3, beta: Float, bias: Bool
    }

    /// Runs conv3 with `algorithm` on `backend`; returns the output.
    func convolve(_ backend: CPUBackend, _ algorithm: ConvolutionAlgorithm, _ s: Shape,
                  input: [Float], weight: [Float], bias: [Float], initial: [Float]) -> [Float] {
        var out = initial
        input.withUnsafeBufferPointer { x in
            weight.withUnsafeBufferPointer { w in
                bias.withUnsafeBufferPointer { b in
                    out.withUnsafeMutableBufferPointer { y in
                        backend.conv3(input: x.baseAddress!, cin: s.cin, extent: s.extent, weight: w.baseAddress!,
                                      bias: s.bias ? b.baseAddress! : nil, output: y.baseAddress!, cout: s.cout,
                                      beta: s.beta, algorithm: algorithm)
                    }
                }
            }
        }
        return out
    }

    func relativeL2(_ a: [Float], _ b: [Float]) -> Double {
        var num = 0.0, den = 0.0
        for (x, y) in zip(a, b) {
            num += (Double(x) - Double(y)) * (Double(x) - Double(y))
            den += Double(y) * Double(y)
        }
        return (num / max(den, 1e-300)).squareRoot()
    }

    /// The relative L2 distance of `algorithm` from im2col at shape `s`, on random data of seed `seed`.
    /// `plant` may alter the Winograd result (to show the check catches a wrong value).
    func distance(_ algorithm: ConvolutionAlgorithm, _ s: Shape, seed: UInt64, threads: Int = 2,
                  plant: (inout [Float]) -> Void = { _ in }) -> Double {
        var rng = SeededGenerator(seed: seed)
        let v = s.extent.voxels
        let fanIn = Double(s.cin * 27)
        let input = (0..<(s.cin * v)).map { _ in Float(rng.normal()) }
        let weight = (0..<(s.cout * s.cin * 27)).map { _ in Float(rng.normal() / fanIn.squareRoot()) }
        let bias = (0..<s.cout).map { _ in Float(rng.normal()) }
        let initial = (0..<(s.cout * v)).map { _ in Float(rng.normal()) }
        let backend = CPUBackend(threads: threads)
        let reference = convolve(backend, .im2col, s, input: input, weight: weight, bias: bias, initial: initial)
        var result = convolve(backend, algorithm, s, input: input, weight: weight, bias: bias, initial: initial)
        plant(&result)
        return relativeL2(result, reference)
    }

    static let shapes: [Shape] = [
        Shape(cin: 1, cout: 1, extent: Extent3(cube: 4), beta: 0, bias: false),
        Shape(cin: 1, cout: 3, extent: Extent3(5, 6, 7), beta: 1, bias: true),
        Shape(cin: 2, cout: 4, extent: Extent3(cube: 1), beta: 0, bias: true),
        Shape(cin: 3, cout: 2, extent: Extent3(2, 3, 1), beta: 1, bias: false),
        Shape(cin: 8, cout: 8, extent: Extent3(cube: 8), beta: 0, bias: true),
        Shape(cin: 16, cout: 8, extent: Extent3(9, 11, 13), beta: 1, bias: true),
        Shape(cin: 32, cout: 16, extent: Extent3(cube: 16), beta: 0, bias: false),
        Shape(cin: 64, cout: 64, extent: Extent3(12, 10, 34), beta: 1, bias: false),
        Shape(cin: 128, cout: 64, extent: Extent3(cube: 8), beta: 0, bias: true),
    ]

    /// F(2,3) agrees with im2col to float32 rounding at every shape (odd, even and 1-voxel sides,
    /// one and many channels, beta 0 and 1, with and without bias), for one and two threads.
    func testWinogradF2MatchesIm2col() {
        for (i, s) in Self.shapes.enumerated() {
            for threads in [1, 2] {
                let d = distance(.winograd, s, seed: UInt64(10 + i), threads: threads)
                XCTAssertLessThan(d, 2e-6, "F(2,3) at \(s), \(threads) threads")
            }
        }
    }

    /// F(4,3) agrees too, with its larger rounding error.
    func testWinogradF4MatchesIm2col() {
        for (i, s) in Self.shapes.enumerated() {
            let d = distance(.winograd4, s, seed: UInt64(30 + i))
            XCTAssertLessThan(d, 2e-5, "F(4,3) at \(s)")
        }
    }

    /// The bound is tight enough to catch one wrong output value, and a transform with one wrong coefficient.
    func testPlantedErrorsAreCaught() {
        let s = Shape(cin: 16, cout: 8, extent: Extent3(9, 11, 13), beta: 1, bias: true)
        let d = distance(.winograd, s, seed: 3) { out in out[out.count / 2] += 0.01 }
        XCTAssertGreaterThan(d, 2e-6, "a changed output value went unnoticed")
        // G with one entry off by 1e-3: the kernel transform is wrong by a little.
        var g = WinogradTransform.f2.g
        g[4] += 1e-3
        let wrong = WinogradTransform(m: 2, bt: WinogradTransform.f2.bt, g: g, at: WinogradTransform.f2.at)
        var rng = SeededGenerator(seed: 5)
        let v = s.extent.voxels
        let input = (0..<(s.cin * v)).map { _ in Float(rng.normal()) }
        let weight = (0..<(s.cout * s.cin * 27)).map { _ in Float(rng.normal()) }
        let backend = CPUBackend(threads: 2)
        let reference = convolve(backend, .im2col, Shape(cin: s.cin, cout: s.cout, extent: s.extent, beta: 0, bias: false),
                                 input: input, weight: weight, bias: [], initial: Array(repeating: 0, count: s.cout * v))
        var out = [Float](repeating: 0, count: s.cout * v)
        input.withUnsafeBufferPointer { x in
            weight.withUnsafeBufferPointer { w in
                out.withUnsafeMutableBufferPointer { y in
                    backend.conv3Winograd(wrong, input: x.baseAddress!, cin: s.cin, extent: s.extent, weight: w.baseAddress!,
                                          bias: nil, output: y.baseAddress!, cout: s.cout, beta: 0)
                }
            }
        }
        XCTAssertGreaterThan(relativeL2(out, reference), 2e-6, "a wrong kernel transform went unnoticed")
    }

    /// Same inputs, same threads: the same bits.
    func testWinogradIsDeterministic() {
        let s = Shape(cin: 32, cout: 16, extent: Extent3(cube: 16), beta: 1, bias: true)
        var rng = SeededGenerator(seed: 8)
        let v = s.extent.voxels
        let input = (0..<(s.cin * v)).map { _ in Float(rng.normal()) }
        let weight = (0..<(s.cout * s.cin * 27)).map { _ in Float(rng.normal()) }
        let bias = (0..<s.cout).map { _ in Float(rng.normal()) }
        let initial = (0..<(s.cout * v)).map { _ in Float(rng.normal()) }
        let a = convolve(CPUBackend(threads: 2), .winograd, s, input: input, weight: weight, bias: bias, initial: initial)
        let b = convolve(CPUBackend(threads: 2), .winograd, s, input: input, weight: weight, bias: bias, initial: initial)
        XCTAssertEqual(a, b)
    }

    func testOverrideParsing() throws {
        XCTAssertNil(try ConvolutionAlgorithm.override(in: [:]))
        XCTAssertNil(try ConvolutionAlgorithm.override(in: ["IFCN_CONV_ALGORITHM": ""]))
        XCTAssertEqual(try ConvolutionAlgorithm.override(in: ["IFCN_CONV_ALGORITHM": "im2col"]), .im2col)
        XCTAssertEqual(try ConvolutionAlgorithm.override(in: ["IFCN_CONV_ALGORITHM": "winograd"]), .winograd)
        XCTAssertThrowsError(try ConvolutionAlgorithm.override(in: ["IFCN_CONV_ALGORITHM": "fft"])) { error in
            XCTAssertTrue("\(error)".contains("IFCN_CONV_ALGORITHM='fft' is not one of im2col, winograd"), "\(error)")
        }
    }

    func testRule() {
        XCTAssertEqual(ConvolutionAlgorithm.rule(inChannels: 2, outChannels: 64, extent: Extent3(cube: 64)), .im2col)
        XCTAssertEqual(ConvolutionAlgorithm.rule(inChannels: 64, outChannels: 64, extent: Extent3(cube: 4)), .im2col)
    }
}
