import CCUDA
import Foundation
import IFCNSupport

extension ConvolutionPrecision {
    /// The shim's precision code (ifcn_conv3_create_variant).
    var shimCode: Int32 {
        switch self {
        case .fp32: return 0
        case .tf32: return 1
        case .bf16: return 2
        }
    }
}

extension GPUMath {
    /// The precision and layout the backend runs its convolutions in.
    public var convolutionVariant: ConvolutionVariant {
        switch self {
        case .fp32: return ConvolutionVariant(.fp32, .ncdhw)
        case .tf32: return ConvolutionVariant(.tf32, .ncdhw)
        case .bf16: return ConvolutionVariant(.bf16, .ncdhw)
        }
    }
}

/// Which cuDNN algorithms the CUDA backend may choose for its convolutions (`IFCN_CUDNN_ALGORITHMS`).
public enum CUDAAlgorithmPolicy: String, CaseIterable, Sendable {
    /// Only algorithms that give the same bits on every run: same seed, same device, same numbers (the default).
    case deterministic
    /// The fastest cuDNN measures, deterministic or not (PyTorch's `cudnn.benchmark` without `cudnn.deterministic`):
    /// a convolution's results may then differ in the last bits between runs, so a resumed run is no longer
    /// bit-identical to an uninterrupted one.
    case fastest

    public static let environmentKey = "IFCN_CUDNN_ALGORITHMS"

    /// The policy `environment` asks for: deterministic when unset or empty; an unknown value is an error naming it.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> CUDAAlgorithmPolicy {
        guard let value = environment[environmentKey], !value.isEmpty else { return .deterministic }
        guard let policy = CUDAAlgorithmPolicy(rawValue: value) else {
            throw CUDAError("\(environmentKey)='\(value)' is not one of " + allCases.map(\.rawValue).joined(separator: ", "))
        }
        return policy
    }
}

/// cuDNN's algorithm choices, kept on disk so a resumed or repeated run uses the same algorithms
/// (and so computes the same bits) as the first: `<cache folder>/cudnn-algorithms.tsv`, one line
/// per (GPU, cuDNN version, math, shape, direction) with the algorithm and its workspace bytes.
final class CUDAAlgorithmCache {
    private let path: String
    private let prefix: String
    private var entries: [String: (algorithm: Int32, workspace: Int)] = [:]

    init(device: CUDADeviceInfo, cudnnVersion: Int) {
        path = CUDAKernelCompiler.cacheFolder + "/cudnn-algorithms.tsv"
        prefix = "\(device.name.replacingOccurrences(of: "\t", with: " "))\tcudnn\(cudnnVersion)"
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: "\t", omittingEmptySubsequences: false)
                if parts.count >= 3, let a = Int32(parts[parts.count - 2]), let bytes = Int(parts[parts.count - 1]) {
                    entries[parts.dropLast(2).joined(separator: "\t")] = (a, bytes)
                }
            }
        }
    }

    func key(_ s: ConvolutionShape, _ d: ConvolutionDirection, _ math: GPUMath, _ policy: CUDAAlgorithmPolicy) -> String {
        // Deterministic choices keep the keys of earlier versions.
        "\(prefix)\t\(math.rawValue)\(policy == .fastest ? "-fastest" : "")\t\(s.inChannels)x\(s.outChannels)x\(s.extent)\t\(d.rawValue)"
    }

    func lookup(_ key: String) -> (algorithm: Int32, workspace: Int)? { entries[key] }

    func store(_ key: String, _ algorithm: Int32, workspace: Int) {
        entries[key] = (algorithm, workspace)
        let text = entries.keys.sorted().map { "\($0)\t\(entries[$0]!.algorithm)\t\(entries[$0]!.workspace)" }
            .joined(separator: "\n") + "\n"
        try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                 withIntermediateDirectories: true)
        try? AtomicFile.write(Data(text.utf8), to: path)  // best effort, like the folder above
    }
}

extension CUDABackend {
    /// cuDNN's workspace starts at this size and grows only when no deterministic algorithm of a
    /// shape fits (measured: 64->64 backward filter at 128^3 on cuDNN 9.19 needs more).
    static let initialConvolutionWorkspace = 256 << 20

    func growConvolutionWorkspace(to bytes: Int) {
        if bytes > convolutionWorkspaceBytes { convolutionWorkspaceBytes = (bytes + (1 << 20) - 1) & ~((1 << 20) - 1) }
    }

    /// The shared convolution workspace, at its current size.
    var convolutionWorkspace: (address: UInt64, bytes: Int) {
        (workspace(.convolution, bytes: convolutionWorkspaceBytes), convolutionWorkspaceBytes)
    }

    /// The convolution's descriptors, with the algorithm for `direction` chosen (first use:
    /// cudnnFind...Ex over deterministic algorithms, or the choice cached on disk).
    func convolution(_ shape: ConvolutionShape, _ direction: ConvolutionDirection,
                     x: UInt64, w: UInt64, y: UInt64) -> OpaquePointer {
        bind()
        let conv: OpaquePointer
        if let c = convolutions[shape] {
            conv = c
        } else {
            var c: OpaquePointer?
            let e = shape.extent
            checkDNN(ifcn_conv3_create_variant(&c, Int32(shape.inChannels), Int32(shape.outChannels), Int32(e.d), Int32(e.h),
                                               Int32(e.w), math.convolutionVariant.precision.shimCode, 0),
                     "cudnn descriptors for \(shape)")
            conv = c!
            convolutions[shape] = conv
        }
        guard ifcn_conv3_algorithm(conv, direction.rawValue) < 0 else { return conv }
        let key = algorithmCache.key(shape, direction, math, algorithmPolicy)
        if let cached = algorithmCache.lookup(key) {
            ifcn_conv3_set_algorithm(conv, direction.rawValue, cached.algorithm)
            growConvolutionWorkspace(to: cached.workspace)
            return conv
        }
        // Find...Ex writes its output: give it scratch memory so real results and accumulated
        // gradients are never touched.
        let outputBytes: Int
        switch direction {
        case .forward: outputBytes = shape.outChannels * shape.extent.voxels * 4
        case .backwardData: outputBytes = shape.inChannels * shape.extent.voxels * 4
        case .backwardFilter: outputBytes = shape.outChannels * shape.inChannels * 27 * 4
        }
        let scratch = workspace(.convolutionFind, bytes: outputBytes)
        let deterministicOnly = algorithmPolicy == .deterministic
        var algorithm: Int32 = 0, needed = 0
        // Benchmarks every algorithm (cudnnFind...Ex) and keeps the fastest the policy allows within the workspace.
        func find() -> Int32 {
            let ws = convolutionWorkspace
            var candidates = [ifcn_conv3_candidate](repeating: ifcn_conv3_candidate(), count: 16)
            var count: Int32 = 0
            let r: Int32
            switch direction {
            case .forward:
                r = ifcn_conv3_find_all(cudnn, conv, direction.rawValue, x, w, scratch, ws.address, ws.bytes, &candidates, 16, &count)
            case .backwardData:
                r = ifcn_conv3_find_all(cudnn, conv, direction.rawValue, scratch, w, y, ws.address, ws.bytes, &candidates, 16, &count)
            case .backwardFilter:
                r = ifcn_conv3_find_all(cudnn, conv, direction.rawValue, x, scratch, y, ws.address, ws.bytes, &candidates, 16, &count)
            }
            guard r == 0 else { return r }
            // Ranked fastest first: the first that ran, fits and is allowed.
            guard let c = candidates.prefix(Int(count)).first(where: {
                $0.status == 0 && $0.workspace_bytes <= ws.bytes && (!deterministicOnly || $0.deterministic != 0)
            }) else { return IFCN_CUDNN_NO_ALGORITHM }
            algorithm = c.algorithm
            needed = c.workspace_bytes
            ifcn_conv3_set_algorithm(conv, direction.rawValue, algorithm)
            return 0
        }
        var r = find()
        if r != 0 {
            // No allowed algorithm fits the workspace (or Find failed): ask cuDNN's heuristics what the
            // best allowed one needs, within half the free device memory, grow the workspace to that and
            // benchmark again.
            var free = 0, total = 0
            _ = ifcn_cu_mem_get_info(&free, &total)
            let cap = max(convolutionWorkspaceBytes, free / 2)
            var h = ifcn_conv3_heuristic(cudnn, conv, direction.rawValue, cap, deterministicOnly ? 1 : 0, &algorithm, &needed)
            if h == IFCN_CUDNN_NO_ALGORITHM {
                // Last resort: an algorithm that may not give the same bits on every run. Say so.
                h = ifcn_conv3_heuristic(cudnn, conv, direction.rawValue, cap, 0, &algorithm, &needed)
                if h == 0 {
                    StandardError.write("warning: cuDNN has no deterministic \(direction) algorithm for \(shape); using algorithm "
                                        + "\(algorithm), so results of this shape may differ in the last bits between runs")
                }
            }
            if h != 0 {
                fatalError("cuDNN: no \(deterministicOnly ? "deterministic " : "")\(direction) algorithm for \(shape) (Find: \(String(cString: ifcn_cudnn_error_string(r))); "
                           + "heuristics within \(cap >> 20) MiB: \(String(cString: ifcn_cudnn_error_string(h))))")
            }
            if needed > convolutionWorkspaceBytes {
                growConvolutionWorkspace(to: needed)
                r = find()
            }
            if r != 0 {  // keep the heuristic's choice
                ifcn_conv3_set_algorithm(conv, direction.rawValue, algorithm)
            }
        }
        algorithmCache.store(key, algorithm, workspace: needed)
        return conv
    }

    /// One pass of a convolution over `x` [cin, extent], `w` [cout, cin, 3, 3, 3] and `y` [cout, extent]: forward
    /// writes y, backward data writes x from the output gradient in y, backward filter writes w from x and the output
    /// gradient in y; `accumulate` adds to what the pass writes. In bf16 math the pass runs on bfloat16 copies of its
    /// operands and its bfloat16 result is widened into the float32 tensor.
    private func runConvolution(_ shape: ConvolutionShape, _ direction: ConvolutionDirection,
                                x: TensorRef, w: TensorRef, y: TensorRef, accumulate: Bool) {
        let bf16 = math == .bf16
        func address(_ t: TensorRef, _ slot: WorkspaceSlot, writtenBy pass: ConvolutionDirection) -> UInt64 {
            guard bf16 else { return pointer(t) }
            return direction == pass ? workspace(slot, bytes: max(t.count, 1) * 2) : bfloat16Copy(t, slot: slot)
        }
        let xa = address(x, .bf16Input, writtenBy: .backwardData), wa = address(w, .bf16Filter, writtenBy: .backwardFilter)
        let ya = address(y, .bf16Output, writtenBy: .forward)
        let conv = convolution(shape, direction, x: xa, w: wa, y: ya)
        let ws = convolutionWorkspace
        // float32 math adds in cuDNN (beta 1); bf16 writes its scratch, and the widening adds.
        let beta: Float = !bf16 && accumulate ? 1 : 0
        let status: Int32
        switch direction {
        case .forward: status = ifcn_conv3_forward(cudnn, conv, xa, wa, beta, ya, ws.address, ws.bytes)
        case .backwardData: status = ifcn_conv3_backward_data(cudnn, conv, ya, wa, beta, xa, ws.address, ws.bytes)
        case .backwardFilter: status = ifcn_conv3_backward_filter(cudnn, conv, xa, ya, beta, wa, ws.address, ws.bytes)
        }
        checkDNN(status, "convolution \(direction) \(shape), \(math.rawValue)")
        if bf16 {
            switch direction {
            case .forward: widenBFloat16(ya, into: y, accumulate: accumulate)
            case .backwardData: widenBFloat16(xa, into: x, accumulate: accumulate)
            case .backwardFilter: widenBFloat16(wa, into: w, accumulate: accumulate)
            }
        }
    }

    public func conv3Forward(input: TensorRef, inChannels: Int, extent: Extent3,
                             weight: TensorRef, bias: TensorRef?, output: TensorRef, outChannels: Int) {
        precondition(input.count == inChannels * extent.voxels && output.count == outChannels * extent.voxels)
        let shape = ConvolutionShape(inChannels: inChannels, outChannels: outChannels, extent: extent)
        runConvolution(shape, .forward, x: input, w: weight, y: output, accumulate: false)
        if let bias { addBias(output, bias: bias, channels: outChannels, voxels: extent.voxels) }
    }

    public func conv3BackwardData(gradOutput: TensorRef, outChannels: Int, extent: Extent3,
                                  weight: TensorRef, gradInput: TensorRef, inChannels: Int, accumulate: Bool) {
        let shape = ConvolutionShape(inChannels: inChannels, outChannels: outChannels, extent: extent)
        runConvolution(shape, .backwardData, x: gradInput, w: weight, y: gradOutput, accumulate: accumulate)
    }

    /// Parameter gradients always accumulate (in bf16 math the weight gradient comes out in bfloat16, cuDNN's bf16
    /// configuration, and is added to the float32 one).
    public func conv3BackwardWeight(input: TensorRef, inChannels: Int, extent: Extent3, gradOutput: TensorRef,
                                    outChannels: Int, gradWeight: TensorRef, gradBias: TensorRef?) {
        let shape = ConvolutionShape(inChannels: inChannels, outChannels: outChannels, extent: extent)
        runConvolution(shape, .backwardFilter, x: input, w: gradWeight, y: gradOutput, accumulate: true)
        if let gradBias { accumulateBiasGradient(gradOutput: gradOutput, channels: outChannels, voxels: extent.voxels, gradBias: gradBias) }
    }
}
