import Foundation
import IFCNSupport

// The CUDA backend's reduced-precision convolution math (`--gpu-math tf32`, `--gpu-math bf16`), emulated on the CPU
// at the CPU's speed, so that its effect on training (the 2,000-iteration curves against fp32) can be
// measured on any machine (`IFCN_EMULATE_GPU_MATH`, bench/precision_curves.sh). Every 3x3x3 convolution, forward,
// backward data and backward filter, in training and inference, rounds its two operands as the GPU path does and
// multiplies them without transforms (direct or im2col, never Winograd), so each product is the GPU's exactly
// (a product of two TF32 or two bfloat16 values is exact in float32); only the order of the float32 sums differs.
// - tf32: both operands rounded to TF32 (10 mantissa bits, to nearest even: the tensor cores' conversion, as the
//   CUDA emulator rounds), the float32 result as it comes. Every convolution is rounded, the worst case: cuDNN may
//   run a shape without tensor cores (the network's 2-channel input layer), and then rounds nothing.
// - bf16: both operands rounded to bfloat16 (`ifcn_to_bf16`), the result rounded to bfloat16 (cuDNN's bf16
//   configuration writes bf16) and then written or added in float32 (`ifcn_from_bf16`), the bias added after in
//   float32; a weight gradient comes out in bfloat16 too and is added to the float32 gradient.
// Batch norm, the 1x1x1 convolution, the loss and Adam stay float32 in both, as on the GPU.
// With `IFCN_EMULATE_GPU_ACTIVATIONS=bf16` as well (`--gpu-activations bf16`), a training network's activations and
// their gradients are held as the CUDA backend holds them in bfloat16: still float32 numbers, every one that a kernel
// writes into them rounded to bfloat16 (`CPUBackend.roundToFormat`), which is what each CUDA kernel's bfloat16
// instance computes in float32 and stores.

/// The case `environment[key]` names, `fallback` when unset or empty; throws on a value that names none.
func emulationSetting<E: RawRepresentable & CaseIterable>(_ key: String, in environment: [String: String],
                                                          fallback: E) throws -> E where E.RawValue == String {
    guard let value = environment[key], !value.isEmpty else { return fallback }
    guard let setting = E(rawValue: value) else {
        throw ConvolutionAlgorithmError(message: "\(key)='\(value)' is not one of " + E.allCases.map(\.rawValue).joined(separator: ", "))
    }
    return setting
}

extension ElementFormat {
    /// The environment variable that makes the CPU backends of a process hold a training network's activations as the
    /// CUDA backend does with `--gpu-activations` (`bf16`, with `IFCN_EMULATE_GPU_MATH=bf16`; unset, empty or
    /// `fp32`: float32).
    public static let emulationKey = "IFCN_EMULATE_GPU_ACTIVATIONS"

    /// The format `environment` asks the CPU to emulate; throws on a value that names none.
    public static func emulationRequested(in environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ElementFormat {
        try emulationSetting(emulationKey, in: environment, fallback: .fp32)
    }

    /// The process's setting, read once (the backend factory checks it first, so a bad value fails before any work).
    public static let processEmulation: ElementFormat = (try? emulationRequested()) ?? .fp32
}

/// TF32 rounding, kept in float32 (the upper 19 bits of the float).
public enum TF32 {
    /// The nearest TF32 value (ties to even; past TF32's largest finite value, infinity); infinity and NaN unchanged.
    @inline(__always)
    public static func round(_ x: Float) -> Float {
        let bits = x.bitPattern
        guard bits & 0x7F80_0000 != 0x7F80_0000 else { return x }
        return Float(bitPattern: (bits &+ 0xFFF &+ ((bits >> 13) & 1)) & ~0x1FFF)
    }
}

extension GPUMath {
    /// The environment variable that makes the CPU backends of a process emulate a GPU math (`tf32` or `bf16`;
    /// unset, empty or `fp32`: the CPU's own float32).
    public static let emulationKey = "IFCN_EMULATE_GPU_MATH"

    /// The math `environment` asks the CPU to emulate; throws on a value that names none.
    public static func emulationRequested(in environment: [String: String] = ProcessInfo.processInfo.environment) throws -> GPUMath {
        try emulationSetting(emulationKey, in: environment, fallback: .fp32)
    }

    /// The process's setting, read once (the backend factory checks it first, so a bad value fails before any work).
    public static let processEmulation: GPUMath = (try? emulationRequested()) ?? .fp32

    /// A convolution operand as this math's tensor cores see it.
    @inline(__always)
    func roundOperand(_ x: Float) -> Float {
        switch self {
        case .fp32: return x
        case .tf32: return TF32.round(x)
        case .bf16: return BFloat16.round(x)
        }
    }

    /// Whether the convolution's result is stored in the reduced precision (bf16) before ifcn reads it.
    var roundsResults: Bool { self == .bf16 }
}

extension CPUBackend {
    /// Whether the convolutions emulate a reduced-precision GPU math.
    var emulatesGPUMath: Bool { emulatedGPUMath != .fp32 }

    /// The algorithm that multiplies a convolution's operands as they are, without transforms: direct where it runs
    /// (and im2col is not forced), else im2col. Emulated reduced precision needs it: a transform would change the
    /// rounded operands before they are multiplied.
    func transformFreeAlgorithm(_ extent: Extent3) -> ConvolutionAlgorithm {
        let im2colForced = (convolutionAlgorithm ?? ConvolutionAlgorithm.processOverride) == .im2col
        let direct = !im2colForced && ConvolutionAlgorithm.directKernelsSupported && ConvolutionAlgorithm.direct.handles(extent)
        return direct ? .direct : .im2col
    }

    /// A new tensor holding `t`'s values rounded as the emulated math's operands.
    private func roundedCopy(_ t: TensorRef) -> TensorRef {
        let copy = TensorRef(buffer: allocate(t.count)), math = emulatedGPUMath
        let src = t.host, dst = copy.host
        parallelChunks(count: t.count, parts: max(1, min(threads, t.count / 65536))) { r in
            for i in r { dst[i] = math.roundOperand(src[i]) }
        }
        return copy
    }

    /// `result` (a convolution's output in float32) rounded where the emulated math stores results in its own
    /// precision, then written into `destination` or added to it.
    private func store(_ result: TensorRef, into destination: TensorRef, accumulate: Bool) {
        let math = emulatedGPUMath, src = result.host, dst = destination.host
        parallelChunks(count: result.count, parts: max(1, min(threads, result.count / 65536))) { r in
            for i in r {
                let v = math.roundsResults ? BFloat16.round(src[i]) : src[i]
                dst[i] = accumulate ? dst[i] + v : v
            }
        }
    }

    /// A forward convolution (training or inference) in the emulated math; the bias is added in float32 after.
    func conv3ForwardEmulatingGPUMath(input: TensorRef, inChannels: Int, extent: Extent3, weight: TensorRef,
                                      bias: TensorRef?, output: TensorRef, outChannels: Int) {
        let x = roundedCopy(input), w = roundedCopy(weight)
        conv3(input: x.host, cin: inChannels, extent: extent, weight: w.host, bias: nil, output: output.host,
              cout: outChannels, beta: 0, algorithm: transformFreeAlgorithm(extent))
        if emulatedGPUMath.roundsResults { store(output, into: output, accumulate: false) }
        if let bias {
            let b = bias.host, y = output.host, v = extent.voxels
            parallelFor(parts: min(threads, outChannels)) { t in
                for c in partRange(t, of: min(threads, outChannels), total: outChannels) {
                    for i in 0..<v { y[c * v + i] += b[c] }
                }
            }
        }
    }

    /// The data gradient in the emulated math.
    func conv3BackwardDataEmulatingGPUMath(gradOutput: TensorRef, outChannels: Int, extent: Extent3, weight: TensorRef,
                                           gradInput: TensorRef, inChannels: Int, accumulate: Bool) {
        let dy = roundedCopy(gradOutput), w = roundedCopy(weight), algorithm = transformFreeAlgorithm(extent)
        guard emulatedGPUMath.roundsResults else {
            return conv3BackwardData(gradOutput: dy, outChannels: outChannels, extent: extent, weight: w,
                                     gradInput: gradInput, inChannels: inChannels, accumulate: accumulate, algorithm: algorithm)
        }
        let result = TensorRef(buffer: allocate(gradInput.count))
        conv3BackwardData(gradOutput: dy, outChannels: outChannels, extent: extent, weight: w, gradInput: result,
                          inChannels: inChannels, accumulate: false, algorithm: algorithm)
        store(result, into: gradInput, accumulate: accumulate)
    }

    /// The weight gradient in the emulated math, added to `gradWeight`; the bias gradient from the float32 output
    /// gradient, as on the GPU.
    func conv3BackwardWeightEmulatingGPUMath(input: TensorRef, inChannels: Int, extent: Extent3, gradOutput: TensorRef,
                                             outChannels: Int, gradWeight: TensorRef, gradBias: TensorRef?) {
        let x = roundedCopy(input), dy = roundedCopy(gradOutput), algorithm = transformFreeAlgorithm(extent)
        if emulatedGPUMath.roundsResults {
            let result = TensorRef(buffer: allocate(gradWeight.count))
            fill(result, value: 0)
            conv3BackwardWeight(input: x, inChannels: inChannels, extent: extent, gradOutput: dy, outChannels: outChannels,
                                gradWeight: result, gradBias: nil, algorithm: algorithm)
            store(result, into: gradWeight, accumulate: true)
        } else {
            conv3BackwardWeight(input: x, inChannels: inChannels, extent: extent, gradOutput: dy, outChannels: outChannels,
                                gradWeight: gradWeight, gradBias: nil, algorithm: algorithm)
        }
        if let gradBias { addChannelSums(gradOutput.host, channels: outChannels, voxels: extent.voxels, into: gradBias.host) }
    }
}
