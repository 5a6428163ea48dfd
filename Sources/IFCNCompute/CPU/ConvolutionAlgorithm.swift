import CConvKernels
import Foundation
import IFCNSupport

/// How `conv3` computes a 3x3x3 convolution on the CPU.
public enum ConvolutionAlgorithm: String, CaseIterable, Sendable {
    /// Chunked im2col + sgemm: exact to sgemm rounding, any shape, any x86-64 or ARM CPU.
    case im2col
    /// Direct convolution with AVX2 + FMA kernels (CConvKernels): no im2col matrix, no sgemm packing.
    /// Rows whose width is a multiple of 8.
    case direct
    /// Winograd F(2x2x2, 3x3x3) with AVX2 + FMA kernels (CConvKernels): 64 multiplications per output
    /// tile and channel pair where direct convolution does 216. Even depth and height, width a multiple
    /// of 16; forward and backward data (the weight gradient runs the direct kernels). The rule picks it
    /// for inference only.
    case winograd
    /// Winograd F(4x4x4, 3x3x3) with AVX2 + FMA kernels: 216 multiplications per 4x4x4 output tile and
    /// channel pair (direct: 1728), with about 16x F(2,3)'s rounding error for one convolution. Depth and
    /// height multiples of 4, width a multiple of 32; forward and backward data. The rule picks it for
    /// inference only.
    case winograd4

    /// The environment variable that overrides the per-shape rule (benchmarks, tests).
    public static let environmentKey = "IFCN_CONV_ALGORITHM"

    /// The override in `environment`, nil when unset or empty; throws on a value that names no algorithm,
    /// or `direct` on a CPU without AVX2 and FMA.
    public static func override(in environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ConvolutionAlgorithm? {
        guard let value = environment[environmentKey], !value.isEmpty else { return nil }
        guard let algorithm = ConvolutionAlgorithm(rawValue: value) else {
            throw ConvolutionAlgorithmError(message: "\(environmentKey)='\(value)' is not one of "
                + allCases.map(\.rawValue).joined(separator: ", "))
        }
        if algorithm != .im2col && !directKernelsSupported {
            throw ConvolutionAlgorithmError(message: "\(environmentKey)=\(value) needs a CPU with AVX2 and FMA; this one has not")
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

    /// Whether this CPU runs the direct kernels (x86-64 with AVX2 and FMA, checked at run time).
    public static let directKernelsSupported = ifcn_conv3_direct_supported() != 0

    /// Whether the CPU reports AVX-512F. OpenBLAS then runs 16-wide sgemm kernels, against which the
    /// 8-wide direct kernels have not been measured, so the rule keeps im2col there.
    public static let cpuHasAVX512 = ifcn_cpu_has_avx512f() != 0

    /// Whether the direct kernels handle rows of `width` voxels (a multiple of 8).
    static func directHandles(width: Int) -> Bool { ifcn_conv3_direct_handles_width(Int32(width)) != 0 }

    /// Whether the Winograd kernels handle `extent` (even depth and height, width a multiple of 16).
    static func winogradHandles(_ extent: Extent3) -> Bool {
        ifcn_winograd_handles(Int32(extent.d), Int32(extent.h), Int32(extent.w)) != 0
    }

    /// Whether the Winograd F(4,3) kernels handle `extent` (depth and height multiples of 4, width of 32).
    static func winograd4Handles(_ extent: Extent3) -> Bool {
        ifcn_winograd4_handles(Int32(extent.d), Int32(extent.h), Int32(extent.w)) != 0
    }

    /// Whether `self` runs at `extent`; the rule and the override fall back from F(4,3) to F(2,3) to direct
    /// to im2col.
    func handles(_ extent: Extent3) -> Bool {
        switch self {
        case .im2col: true
        case .direct: Self.directHandles(width: extent.w)
        case .winograd: Self.winogradHandles(extent)
        case .winograd4: Self.winograd4Handles(extent)
        }
    }

    /// The algorithm of the weight gradient when `self` runs the data convolutions (Winograd has none).
    var weightGradient: ConvolutionAlgorithm { self == .winograd || self == .winograd4 ? .direct : self }

    /// The policy this process runs, in words (bench output, logs).
    public static var policy: String {
        if let forced = processOverride { return "\(forced.rawValue) forced by \(environmentKey) (where it runs)" }
        if !directKernelsSupported { return "im2col (no AVX2 + FMA)" }
        if cpuHasAVX512 { return "im2col (AVX-512 CPU: OpenBLAS's wider sgemm)" }
        return "direct in training (winograd for backward data at C >= 32), winograd4 (else winograd) in inference at "
            + "C >= 32, im2col on rows narrower than 8"
    }

    /// What a convolution serves: a training step's forward pass (and weight gradient), its backward-data
    /// convolutions (input gradients, on which no ReLU mask depends), or an inference (eval-mode) forward pass.
    public enum Purpose: Sendable {
        case training, backwardData, inference
    }

    /// The per-shape rule, from measurements on the 2-core Zen with AVX2 (docs/BENCHMARKS.md), where the
    /// AVX2 kernels run (AVX2 + FMA, no AVX-512):
    /// - inference, both channel counts at least 32: Winograd F(4,3) where it runs, else F(2,3) (F(2,3) about
    ///   2x faster than direct at C=64, F(4,3) about 1.7x faster than F(2,3); at C=16 the transforms eat the
    ///   gain). Every fixture's eval outputs stay within the reference tolerance with either. Not in
    ///   training's forward pass: F(2,3)'s forward rounding error, ~3x direct's, already flips enough ReLU masks
    ///   to move the P=32 fixture's gradients by up to 1.5% (docs/BENCHMARKS.md);
    /// - a training step's backward data, both channel counts at least 32: F(2,3) (no mask depends on the input
    ///   gradients, so its rounding stays rounding: the C=32 fixture's gradients keep within 1.5x PyTorch
    ///   float32's error);
    /// - direct elsewhere on rows a multiple of 8 wide (faster than im2col + OpenBLAS at every size);
    /// - im2col otherwise (rows of 4 at the coarsest level, CPUs without AVX2, AVX-512 CPUs).
    /// (Winograd F(2,3) and F(4,3) in scalar Swift on top of sgemm were measured in session 4 and removed:
    /// slower than im2col at every shape.)
    public static func rule(inChannels: Int, outChannels: Int, extent: Extent3, purpose: Purpose = .training,
                            kernelsSupported: Bool = directKernelsSupported && !cpuHasAVX512) -> ConvolutionAlgorithm {
        guard kernelsSupported else { return .im2col }
        if purpose == .inference && min(inChannels, outChannels) >= 32 {
            if winograd4Handles(extent) { return .winograd4 }
            if winogradHandles(extent) { return .winograd }
        }
        if purpose == .backwardData && min(inChannels, outChannels) >= 32 && winogradHandles(extent) { return .winograd }
        return directHandles(width: extent.w) ? .direct : .im2col
    }

    /// Where `self` does not handle an extent, the algorithm to try next (F(4,3), F(2,3), direct, im2col).
    var fallback: ConvolutionAlgorithm? {
        switch self {
        case .winograd4: .winograd
        case .winograd: .direct
        case .direct: .im2col
        case .im2col: nil
        }
    }

    /// `forced` if given, else the override if set (either falling back along `fallback` where it does not
    /// handle the extent), else the rule.
    static func choose(inChannels: Int, outChannels: Int, extent: Extent3, purpose: Purpose = .training,
                       forced: ConvolutionAlgorithm? = nil) -> ConvolutionAlgorithm {
        guard let algorithm = forced ?? processOverride else {
            return rule(inChannels: inChannels, outChannels: outChannels, extent: extent, purpose: purpose)
        }
        var chosen = algorithm
        while !chosen.handles(extent), let next = chosen.fallback { chosen = next }
        return chosen
    }
}

public struct ConvolutionAlgorithmError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
