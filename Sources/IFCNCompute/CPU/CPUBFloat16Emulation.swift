import Foundation
import IFCNSupport

// bfloat16 inference, emulated on any CPU: what an inference convolution with bfloat16 operands and float32 sums
// (AVX512_BF16's dot products, AMX's tiles, oneDNN's bf16 convolutions) computes, at float32 speed. A product of
// two bfloat16 values is exact in float32, so rounding the operands and running a float32 convolution without
// transforms (direct or im2col, not Winograd) gives those kernels' results up to the order of the float32 sums.
// For judging bf16's effect on accuracy on a machine without bf16 instructions (bench/bf16_accuracy.sh).

/// bfloat16 rounding, kept in float32 (the upper 16 bits of the float).
public enum BFloat16 {
    /// The nearest bfloat16 (ties to even; past bfloat16's largest finite value, infinity); NaN stays NaN.
    @inline(__always)
    public static func round(_ x: Float) -> Float {
        guard !x.isNaN else { return x }
        let bits = x.bitPattern
        return Float(bitPattern: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) & 0xFFFF_0000)
    }

    /// Rounds `count` floats in place, on all of the backend's threads.
    static func roundInPlace(_ p: UnsafeMutablePointer<Float>, count: Int, threads: Int) {
        parallelChunks(count: count, parts: max(1, min(threads, count / 65536))) { r in
            for i in r { p[i] = round(p[i]) }
        }
    }

    /// The environment variable that turns the emulation on for the CPU backends of a process ("1"; "0" or unset: off).
    public static let environmentKey = "IFCN_EMULATE_BF16"

    /// Whether `environment` asks for the emulation; throws on a value other than 1, 0 or empty.
    public static func emulationRequested(in environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Bool {
        switch environment[environmentKey] ?? "" {
        case "", "0": return false
        case "1": return true
        case let v: throw ConvolutionAlgorithmError(message: "\(environmentKey)='\(v)' is not 1 or 0")
        }
    }

    /// The process's setting, read once (the backend factory checks it first, so a bad value fails before any work).
    public static let processEmulation: Bool = (try? emulationRequested()) ?? false
}

extension CPUBackend {
    /// An inference convolution with bfloat16 operands: `input` is rounded in place (as bfloat16 activations would
    /// be stored), the filter in a copy; then a float32 convolution without transforms.
    func conv3InferenceBFloat16(input: TensorRef, inChannels: Int, extent: Extent3, weight: TensorRef, bias: TensorRef?,
                                output: TensorRef, outChannels: Int) {
        BFloat16.roundInPlace(input.host, count: input.count, threads: threads)
        let rounded = (0..<weight.count).map { BFloat16.round(weight.host[$0]) }
        let algorithm = transformFreeAlgorithm(extent)
        rounded.withUnsafeBufferPointer { w in
            conv3(input: input.host, cin: inChannels, extent: extent, weight: w.baseAddress!, bias: bias?.host,
                  output: output.host, cout: outChannels, beta: 0, algorithm: algorithm)
        }
    }
}
