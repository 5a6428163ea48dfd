import Foundation
import IFCNCompute
import IFCNEngine
import IFCNSupport
import XCTest

/// `IFCN_EMULATE_BF16`: bfloat16 rounding, and inference convolutions that compute with rounded operands.
final class BFloat16EmulationTests: XCTestCase {
    func testRoundingIsToNearestEven() {
        assertRoundsToNearestEven(BFloat16.round, fractionBits: 7)
        XCTAssertEqual(BFloat16.round(0.1).bitPattern, 0x3DCD_0000)     // 0.1f is 0x3DCCCCCD: the lower half rounds up
    }

    func testEnvironmentValues() throws {
        XCTAssertFalse(try BFloat16.emulationRequested(in: [:]))
        XCTAssertFalse(try BFloat16.emulationRequested(in: [BFloat16.environmentKey: "0"]))
        XCTAssertTrue(try BFloat16.emulationRequested(in: [BFloat16.environmentKey: "1"]))
        XCTAssertThrowsError(try BFloat16.emulationRequested(in: [BFloat16.environmentKey: "yes"])) {
            XCTAssertTrue("\($0)".contains("IFCN_EMULATE_BF16='yes'"), "\($0)")
        }
    }

    /// The emulated inference convolution is the float32 convolution of the rounded input and filter, bit for bit,
    /// on the direct kernels and (rows of 4) on im2col; it rounds its input in place; training is unaffected.
    func testInferenceConvolutionComputesWithRoundedOperands() throws {
        for (extent, algorithm) in [(Extent3(6, 5, 16), ConvolutionAlgorithm.direct), (Extent3(4, 4, 4), .im2col)] {
            if algorithm == .direct && !ConvolutionAlgorithm.directKernelsSupported { continue }
            let cin = 5, cout = 7
            var rng = SeededGenerator(seed: 4)
            let x = randomValues(cin * extent.voxels, &rng), w = randomValues(cout * cin * 27, &rng, scale: 0.2)
            let b = randomValues(cout, &rng)
            let emulating = CPUBackend(threads: 2, bfloat16Inference: true)
            let plain = CPUBackend(threads: 2, convolutionAlgorithm: algorithm, bfloat16Inference: false)
            func run(_ backend: CPUBackend, _ x: [Float], _ w: [Float], inference: Bool) -> (output: [Float], input: [Float]) {
                let h = Host(backend: backend)
                let input = h.tensor(x), out = h.zeros(cout * extent.voxels)
                if inference {
                    backend.conv3InferenceForward(input: input, inChannels: cin, extent: extent, weight: h.tensor(w), bias: h.tensor(b),
                                                  output: out, outChannels: cout)
                } else {
                    backend.conv3Forward(input: input, inChannels: cin, extent: extent, weight: h.tensor(w), bias: h.tensor(b),
                                         output: out, outChannels: cout)
                }
                return (h.read(out), h.read(input))
            }
            let emulated = run(emulating, x, w, inference: true)
            let expected = run(plain, x.map(BFloat16.round), w.map(BFloat16.round), inference: true)
            XCTAssertEqual(emulated.output, expected.output, "\(extent)")
            XCTAssertEqual(emulated.input, x.map(BFloat16.round), "\(extent): input rounded in place")
            let float32 = run(plain, x, w, inference: true).output
            XCTAssertNotEqual(emulated.output, float32, "\(extent): rounding changes the result")
            let relative = sqrt(zip(emulated.output, float32).map { Double(($0 - $1) * ($0 - $1)) }.reduce(0, +)
                / float32.map { Double($0 * $0) }.reduce(0, +))
            XCTAssertLessThan(relative, 1e-2, "\(extent): bfloat16's error is about 2^-9 per operand")
            // A training convolution on the emulating backend is float32.
            XCTAssertEqual(run(emulating, x, w, inference: false).output,
                           run(CPUBackend(threads: 2, bfloat16Inference: false), x, w, inference: false).output, "\(extent)")
        }
    }
}
