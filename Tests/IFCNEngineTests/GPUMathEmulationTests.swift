import Foundation
import IFCNCompute
import IFCNEngine
import IFCNSupport
import XCTest

/// `IFCN_EMULATE_GPU_MATH`: the CUDA backend's tf32 and bf16 convolution math on the CPU. What each pass rounds,
/// pinned bit for bit against float32 convolutions of rounded operands; its agreement with the CUDA backend itself
/// (on the emulated GPU) is `CUDAEmulatorTests.testCPUEmulationOfTheGPUMathAgreesWithTheGPUPath`.
final class GPUMathEmulationTests: XCTestCase {
    func testTF32RoundingIsToNearestEven() {
        assertRoundsToNearestEven(TF32.round, fractionBits: 10)
        XCTAssertEqual(TF32.round(0.1).bitPattern, 0x3DCC_C000)     // 0.1f is 0x3DCCCCCD: its low 13 bits 0x0CCD round down
    }

    func testEnvironmentValues() throws {
        XCTAssertEqual(try GPUMath.emulationRequested(in: [:]), .fp32)
        XCTAssertEqual(try GPUMath.emulationRequested(in: [GPUMath.emulationKey: ""]), .fp32)
        XCTAssertEqual(try GPUMath.emulationRequested(in: [GPUMath.emulationKey: "fp32"]), .fp32)
        XCTAssertEqual(try GPUMath.emulationRequested(in: [GPUMath.emulationKey: "tf32"]), .tf32)
        XCTAssertEqual(try GPUMath.emulationRequested(in: [GPUMath.emulationKey: "bf16"]), .bf16)
        XCTAssertThrowsError(try GPUMath.emulationRequested(in: [GPUMath.emulationKey: "fp16"])) {
            XCTAssertTrue("\($0)".contains("IFCN_EMULATE_GPU_MATH='fp16' is not one of fp32, tf32, bf16"), "\($0)")
        }
        XCTAssertEqual(CPUBackend(threads: 1, bfloat16Inference: false, emulatedGPUMath: .tf32).name,
                       "cpu (GPU tf32 convolutions, emulated)")
    }

    /// Each pass rounds both operands (TF32 or bfloat16) and multiplies them without transforms; bf16 also rounds
    /// the pass's result before writing or adding it, and adds the bias after; the bias gradient comes from the
    /// unrounded output gradient. Checked bit for bit against a float32 backend on the same transform-free
    /// algorithm, on the direct kernels and (rows of 4) on im2col, in training and inference, where an accumulating
    /// pass adds to what its output held.
    func testEveryConvolutionPassComputesWithRoundedOperands() throws {
        let cases: [(Extent3, ConvolutionAlgorithm)] = [(Extent3(6, 5, 16), .direct), (Extent3(4, 4, 4), .im2col)]
        for math in [GPUMath.tf32, .bf16] {
            let round: (Float) -> Float = math == .tf32 ? TF32.round : BFloat16.round
            let result: (Float) -> Float = math == .bf16 ? BFloat16.round : { $0 }
            for (extent, algorithm) in cases {
                if algorithm == .direct && !ConvolutionAlgorithm.directKernelsSupported { continue }
                let cin = 5, cout = 7, v = extent.voxels, label = "\(math) at \(extent)"
                var rng = SeededGenerator(seed: 4)
                let x = randomValues(cin * v, &rng), w = randomValues(cout * cin * 27, &rng, scale: 0.2)
                let b = randomValues(cout, &rng), dy = randomValues(cout * v, &rng)
                let held = randomValues(cin * v, &rng), heldW = randomValues(cout * cin * 27, &rng), heldB = randomValues(cout, &rng)
                let emulating = CPUBackend(threads: 2, bfloat16Inference: false, emulatedGPUMath: math)
                let plain = CPUBackend(threads: 2, convolutionAlgorithm: algorithm, bfloat16Inference: false, emulatedGPUMath: .fp32)
                let e = Host(backend: emulating), p = Host(backend: plain)

                // Forward, training and inference: the rounded result, then the bias in float32.
                let expectedForward: [Float] = {
                    let out = p.zeros(cout * v)
                    plain.conv3Forward(input: p.tensor(x.map(round)), inChannels: cin, extent: extent,
                                       weight: p.tensor(w.map(round)), bias: nil, output: out, outChannels: cout)
                    return p.read(out).enumerated().map { result($0.element) + b[$0.offset / v] }
                }()
                for inference in [false, true] {
                    let out = e.zeros(cout * v), input = e.tensor(x)
                    if inference {
                        emulating.conv3InferenceForward(input: input, inChannels: cin, extent: extent, weight: e.tensor(w),
                                                        bias: e.tensor(b), output: out, outChannels: cout)
                    } else {
                        emulating.conv3Forward(input: input, inChannels: cin, extent: extent, weight: e.tensor(w),
                                               bias: e.tensor(b), output: out, outChannels: cout)
                    }
                    XCTAssertEqual(e.read(out), expectedForward, "\(label): forward, inference \(inference)")
                    XCTAssertEqual(e.read(input), x, "\(label): the input is left as it was")
                }

                // Backward data, written and added.
                for accumulate in [false, true] {
                    let pass = p.zeros(cin * v)
                    plain.conv3BackwardData(gradOutput: p.tensor(dy.map(round)), outChannels: cout, extent: extent,
                                            weight: p.tensor(w.map(round)), gradInput: pass, inChannels: cin, accumulate: false)
                    let expected = zip(p.read(pass), held).map { accumulate ? $1 + result($0) : result($0) }
                    let gradInput = e.tensor(held)
                    emulating.conv3BackwardData(gradOutput: e.tensor(dy), outChannels: cout, extent: extent, weight: e.tensor(w),
                                                gradInput: gradInput, inChannels: cin, accumulate: accumulate)
                    if math == .bf16 || !accumulate {
                        XCTAssertEqual(e.read(gradInput), expected, "\(label): backward data, accumulate \(accumulate)")
                    } else {  // tf32 adds inside the convolution (cuDNN's beta 1): the same sum, rounded once less
                        XCTAssertEqual(maxRelative(e.read(gradInput), expected), 0, accuracy: 1e-6, label)
                    }
                }

                // Backward filter: added to the held gradient; the bias gradient from the float32 output gradient.
                let pass = p.tensor([Float](repeating: 0, count: heldW.count)), passBias = p.tensor(heldB)
                plain.conv3BackwardWeight(input: p.tensor(x.map(round)), inChannels: cin, extent: extent,
                                          gradOutput: p.tensor(dy.map(round)), outChannels: cout, gradWeight: pass, gradBias: nil)
                plain.conv3BackwardWeight(input: p.tensor(x), inChannels: cin, extent: extent, gradOutput: p.tensor(dy),
                                          outChannels: cout, gradWeight: p.zeros(heldW.count), gradBias: passBias)
                let expectedW = zip(p.read(pass), heldW).map { $1 + result($0) }
                let gradWeight = e.tensor(heldW), gradBias = e.tensor(heldB)
                emulating.conv3BackwardWeight(input: e.tensor(x), inChannels: cin, extent: extent, gradOutput: e.tensor(dy),
                                              outChannels: cout, gradWeight: gradWeight, gradBias: gradBias)
                if math == .bf16 {
                    XCTAssertEqual(e.read(gradWeight), expectedW, "\(label): backward filter")
                } else {
                    XCTAssertEqual(maxRelative(e.read(gradWeight), expectedW), 0, accuracy: 1e-6, label)
                }
                XCTAssertEqual(e.read(gradBias), p.read(passBias), "\(label): bias gradient")

                // The rounding matters: float32 operands give other results.
                let float32 = p.zeros(cout * v)
                plain.conv3Forward(input: p.tensor(x), inChannels: cin, extent: extent, weight: p.tensor(w), bias: p.tensor(b),
                                   output: float32, outChannels: cout)
                let distance = maxRelative(expectedForward, p.read(float32))
                XCTAssertGreaterThan(distance, math == .tf32 ? 1e-5 : 1e-4, label)
                XCTAssertLessThan(distance, math == .tf32 ? 1e-2 : 1e-1, label)
            }
        }
    }

    /// At 32 channels and more, inference fuses batch norm into the Winograd kernels; emulating, it runs the
    /// transform-free convolution and the batch norm apart, as the GPU does.
    func testInferenceWithBatchNormSkipsTheWinogradKernels() throws {
        // Without AVX2 and FMA inference runs im2col only: there is no Winograd path to skip.
        guard ConvolutionAlgorithm.directKernelsSupported else { throw XCTSkip("no Winograd kernels without AVX2 and FMA") }
        let c = 32, extent = Extent3(4, 4, 16), v = extent.voxels
        var rng = SeededGenerator(seed: 5)
        let x = randomValues(c * v, &rng), w = randomValues(c * c * 27, &rng, scale: 0.05)
        let gamma = randomValues(c, &rng), beta = randomValues(c, &rng), mean = randomValues(c, &rng, scale: 0.1)
        let variance = (0..<c).map { _ in Float(0.5 + abs(rng.normal())) }
        let backend = CPUBackend(threads: 2, bfloat16Inference: false, emulatedGPUMath: .bf16), h = Host(backend: backend)
        let norm = EvalBatchNorm(gamma: h.tensor(gamma), beta: h.tensor(beta), runningMean: h.tensor(mean),
                                 runningVar: h.tensor(variance), epsilon: 1e-5, relu: true)
        let fused = h.zeros(c * v), scratch = h.zeros(c * v)
        backend.conv3BatchNormInferenceForward(input: h.tensor(x), inChannels: c, extent: extent, weight: h.tensor(w),
                                               convOutput: scratch, outChannels: c, norm: norm, output: fused)
        let conv = h.zeros(c * v), apart = h.zeros(c * v)
        backend.conv3InferenceForward(input: h.tensor(x), inChannels: c, extent: extent, weight: h.tensor(w), bias: nil,
                                      output: conv, outChannels: c)
        XCTAssertTrue(h.read(conv).allSatisfy { BFloat16.round($0) == $0 }, "the convolution's results are bfloat16")
        backend.batchNormEvalForward(input: conv, output: apart, channels: c, voxels: v, gamma: norm.gamma, beta: norm.beta,
                                     runningMean: norm.runningMean, runningVar: norm.runningVar, epsilon: norm.epsilon, relu: true)
        XCTAssertEqual(h.read(fused), h.read(apart))
    }

    private func maxRelative(_ a: [Float], _ b: [Float]) -> Double {
        let scale = b.map { Double(abs($0)) }.max() ?? 1
        return zip(a, b).map { Double(abs($0 - $1)) }.max()! / max(scale, 1e-30)
    }
}
