import Foundation

/// Memory order of a convolution's tensors and filters.
public enum TensorLayout: String, CaseIterable, Sendable {
    /// Channel-first, W fastest: what every ifcn kernel uses.
    case ncdhw
    /// Channels-last (PyTorch's channels_last_3d): channels fastest, filters [cout, 3, 3, 3, cin].
    case ndhwc
}

/// Number format of a convolution's tensors and the math that combines them (accumulation is float32 in all).
public enum ConvolutionPrecision: String, CaseIterable, Sendable {
    /// float32 with FMA only (`--gpu-math fp32`).
    case fp32
    /// float32 tensors, TF32 tensor cores allowed (`--gpu-math tf32`).
    case tf32
    /// bfloat16 tensors and filters.
    case bf16
}

/// One way to run the network's convolutions, as `ifcn bench --conv-sweep` times them.
public struct ConvolutionVariant: Hashable, Sendable, CustomStringConvertible {
    public var precision: ConvolutionPrecision
    public var layout: TensorLayout
    public init(_ precision: ConvolutionPrecision, _ layout: TensorLayout) { self.precision = precision; self.layout = layout }
    public var description: String { "\(precision.rawValue) \(layout.rawValue)" }

    /// The levers: both tensor-core maths in both layouts (tf32 first, the training default).
    public static let levers: [ConvolutionVariant] = [.init(.tf32, .ncdhw), .init(.tf32, .ndhwc), .init(.bf16, .ndhwc), .init(.bf16, .ncdhw)]

    /// What a sweep times: `baseline` (what the backend runs now) first, then the levers (a budget cut drops the
    /// last). float32 math is no lever: it is timed only as a baseline (`--gpu-math fp32`).
    public static func sweep(from baseline: ConvolutionVariant) -> [ConvolutionVariant] {
        [baseline] + levers.filter { $0 != baseline }
    }

    /// Input channels to time besides `channels` itself: channels-last kernels may want a multiple of 8
    /// (the "pad the 2-channel input to 8"), so such shapes are timed padded as well.
    public func paddedInChannels(_ channels: Int) -> Int? {
        layout == .ndhwc && channels % 8 != 0 ? (channels + 7) / 8 * 8 : nil
    }
}

/// One algorithm's median time on the device.
public struct AlgorithmTiming: Sendable, Equatable {
    public var algorithm: Int
    public var seconds: Double
    public var workspaceBytes: Int
    public init(algorithm: Int, seconds: Double, workspaceBytes: Int) {
        self.algorithm = algorithm; self.seconds = seconds; self.workspaceBytes = workspaceBytes
    }
}

/// One convolution of the network in one variant: the fastest deterministic algorithm and the fastest of all.
public struct SweepMeasurement: Sendable {
    public var call: ConvolutionCall
    public var variant: ConvolutionVariant
    /// Input channels as timed: the call's own, or padded (`ConvolutionVariant.paddedInChannels`).
    public var timedInChannels: Int
    public var deterministic: AlgorithmTiming?
    public var fastest: AlgorithmTiming?
    /// Why nothing could be timed (cuDNN refused the configuration, no algorithm fits), if so.
    public var problem: String?
    public init(call: ConvolutionCall, variant: ConvolutionVariant, timedInChannels: Int,
                deterministic: AlgorithmTiming? = nil, fastest: AlgorithmTiming? = nil, problem: String? = nil) {
        self.call = call; self.variant = variant; self.timedInChannels = timedInChannels
        self.deterministic = deterministic; self.fastest = fastest; self.problem = problem
    }
    func timing(deterministicOnly: Bool) -> AlgorithmTiming? { deterministicOnly ? deterministic : fastest }
}

/// The network's convolutions timed in each variant: what a step's convolutions would cost in each
/// precision and layout, before the backend is changed to run them so.
public struct ConvolutionSweep: Sendable {
    /// The convolutions of one span (a training step or a forward pass) and how often each runs.
    public var calls: [ConvolutionCall: Int]
    public var measurements: [SweepMeasurement] = []
    /// The variant the backend runs now (the ratios' denominator).
    public var baseline: ConvolutionVariant
    /// Variants not timed, or timed only in part, when the time budget ran out (in sweep order).
    public var skipped: [ConvolutionVariant] = []
    /// What the measurements ran on ("NVIDIA H200, cuDNN 91900, workspace cap 8192 MiB").
    public var device: String

    public init(calls: [ConvolutionCall: Int], baseline: ConvolutionVariant, device: String) {
        self.calls = calls; self.baseline = baseline; self.device = device
    }

    /// Distinct calls in a fixed order (largest volumes and channel counts first, then pass).
    public var orderedCalls: [ConvolutionCall] {
        calls.keys.sorted {
            let a = $0.shape, b = $1.shape
            if a.extent.voxels != b.extent.voxels { return a.extent.voxels > b.extent.voxels }
            if a.inChannels != b.inChannels { return a.inChannels > b.inChannels }
            if a.outChannels != b.outChannels { return a.outChannels > b.outChannels }
            return $0.direction.rawValue < $1.direction.rawValue
        }
    }

    /// Variants with measurements, in sweep order.
    public var variants: [ConvolutionVariant] {
        var seen: [ConvolutionVariant] = []
        for m in measurements where !seen.contains(m.variant) { seen.append(m.variant) }
        return seen
    }

    /// The best time of `call` in `variant` (padded or not), or nil if it could not be timed.
    public func best(_ call: ConvolutionCall, _ variant: ConvolutionVariant, deterministicOnly: Bool) -> SweepMeasurement? {
        measurements.filter { $0.call == call && $0.variant == variant && $0.timing(deterministicOnly: deterministicOnly) != nil }
            .min { $0.timing(deterministicOnly: deterministicOnly)!.seconds < $1.timing(deterministicOnly: deterministicOnly)!.seconds }
    }

    /// Seconds the span's convolutions of `direction` (all, when nil) take in `variant`: each call's best time
    /// times its count; nil when one of them could not be timed.
    public func seconds(_ variant: ConvolutionVariant, deterministicOnly: Bool, direction: ConvolutionDirection? = nil) -> Double? {
        var total = 0.0
        for (call, count) in calls where direction == nil || call.direction == direction {
            guard let m = best(call, variant, deterministicOnly: deterministicOnly) else { return nil }
            total += Double(count) * m.timing(deterministicOnly: deterministicOnly)!.seconds
        }
        return total
    }

    /// Floating-point operations of the span's convolutions (for TFLOP/s).
    public var flops: Double { calls.reduce(0) { $0 + Double($1.value) * $1.key.shape.flops } }

    /// One row per variant: the span's convolution time with deterministic algorithms and with any, split by pass,
    /// against the baseline's deterministic time.
    public func table() -> String {
        var lines = ["convolution sweep: \(calls.values.reduce(0, +)) convolutions per span (\(calls.count) distinct), \(device)",
                     "  variant       algorithms      forward  bwd data  bwd filter     total  TFLOP/s  vs \(baseline) deterministic"]
        let reference = seconds(baseline, deterministicOnly: true)
        func ms(_ s: Double?) -> String { s.map { String(format: "%9.2f", $0 * 1e3) } ?? "        -" }
        for v in variants {
            for deterministicOnly in [true, false] {
                let total = seconds(v, deterministicOnly: deterministicOnly)
                let ratio = total.flatMap { t in reference.map { String(format: "%.2fx", t / $0) } } ?? "-"
                let tflops = total.map { String(format: "%7.1f", flops / $0 / 1e12) } ?? "      -"
                lines.append("  " + v.description.padding(toLength: 13, withPad: " ", startingAt: 0)
                             + (deterministicOnly ? " deterministic" : " any          ")
                             + ms(seconds(v, deterministicOnly: deterministicOnly, direction: .forward))
                             + ms(seconds(v, deterministicOnly: deterministicOnly, direction: .backwardData)) + " "
                             + ms(seconds(v, deterministicOnly: deterministicOnly, direction: .backwardFilter)) + "  "
                             + ms(total) + "  " + tflops + "  " + ratio)
            }
        }
        lines.append("  (milliseconds per span; '-': a convolution of that variant could not be timed, see the JSON)")
        let problems = measurements.filter { $0.problem != nil }
        for p in problems.prefix(8) {
            lines.append("  \(p.variant), \(p.call) (cin \(p.timedInChannels)): \(p.problem!)")
        }
        if problems.count > 8 { lines.append("  ... \(problems.count - 8) more in the JSON") }
        if !skipped.isEmpty { lines.append("  not (fully) timed (time budget): " + skipped.map(\.description).joined(separator: ", ")) }
        return lines.joined(separator: "\n")
    }

    /// JSON-ready: per variant the span's seconds (deterministic, any, per pass) and every measurement.
    public var json: [String: Any] {
        func timing(_ t: AlgorithmTiming?) -> Any {
            guard let t else { return NSNull() }
            return ["algorithm": t.algorithm, "seconds": t.seconds, "workspace_bytes": t.workspaceBytes]
        }
        var perVariant: [String: Any] = [:]
        for v in variants {
            var entry: [String: Any] = [:]
            for (key, deterministicOnly) in [("deterministic", true), ("any", false)] {
                var d: [String: Any] = ["total_seconds": seconds(v, deterministicOnly: deterministicOnly) as Any? ?? NSNull()]
                for dir in ConvolutionDirection.allCases {
                    d[dir.description.replacingOccurrences(of: " ", with: "_") + "_seconds"] =
                        seconds(v, deterministicOnly: deterministicOnly, direction: dir) as Any? ?? NSNull()
                }
                entry[key] = d
            }
            perVariant[v.description.replacingOccurrences(of: " ", with: "_")] = entry
        }
        let rows: [[String: Any]] = measurements.map { m in
            ["variant": m.variant.description, "shape": m.call.shape.description, "direction": m.call.direction.description,
             "calls": calls[m.call] ?? 0, "timed_in_channels": m.timedInChannels,
             "deterministic": timing(m.deterministic), "fastest": timing(m.fastest), "problem": m.problem as Any? ?? NSNull()]
        }
        return ["device": device, "baseline": baseline.description, "flops_per_span": flops,
                "variants": perVariant, "measurements": rows, "skipped": skipped.map(\.description)]
    }
}
