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
    /// The number format and math of the convolutions in this mode.
    public var convolutionPrecision: ConvolutionPrecision {
        switch self {
        case .fp32: return .fp32
        case .tf32: return .tf32
        case .bf16: return .bf16
        }
    }
}

extension ConvolutionPrecision {
    /// Bytes of one tensor element.
    var bytes: Int { self == .bf16 ? 2 : 4 }
}

/// A convolution operand as ifcn holds it, [batches][channels][voxels] in float32, and how the backend stages it for
/// cuDNN: the same order (bf16 NCDHW), or channels-last [batches][voxels][stride] with `stride - channels` zero
/// channels after the real ones. A filter [cout][cin][3][3][3] is cout batches of cin channels of 27 voxels.
struct StagedOperand: Equatable {
    var batches: Int, channels: Int, stride: Int, voxels: Int
    /// Elements of ifcn's tensor.
    var count: Int { batches * channels * voxels }
    /// Elements of the staged copy.
    var stagedCount: Int { batches * voxels * stride }

    /// The three operands of a convolution of `shape` whose input (and filter) is staged with `inStride` channels.
    static func operands(of shape: ConvolutionShape, paddedTo inStride: Int)
        -> (input: StagedOperand, output: StagedOperand, filter: StagedOperand) {
        let v = shape.extent.voxels
        return (StagedOperand(batches: 1, channels: shape.inChannels, stride: inStride, voxels: v),
                StagedOperand(batches: 1, channels: shape.outChannels, stride: shape.outChannels, voxels: v),
                StagedOperand(batches: shape.outChannels, channels: shape.inChannels, stride: inStride, voxels: 27))
    }
}

extension TensorLayout {
    /// The shim's layout code (ifcn_conv3_create_variant).
    var shimCode: Int32 { self == .ndhwc ? 1 : 0 }
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

/// One cuDNN algorithm choice: the algorithm, the math type Find...Ex ran it under (cudnnMathType_t), and its workspace.
struct CUDAAlgorithmChoice: Equatable {
    var algorithm: Int32, mathType: Int32, workspace: Int
}

/// cuDNN's algorithm choices, kept on disk so a resumed or repeated run uses the same algorithms
/// (and so computes the same bits) as the first: `<cache folder>/cudnn-algorithms.tsv`, one line
/// per (GPU, cuDNN version, math, shape, direction) with the algorithm, its math type and its workspace bytes.
final class CUDAAlgorithmCache {
    /// "search3": choices with the math type each algorithm runs under. Lines of earlier searches ("search2": no math
    /// type, so an algorithm could run under the descriptor's math type where cuDNN refused it) are kept in the file,
    /// unread.
    static let generation = "search3"
    private let path: String
    private let prefix: String
    private var entries: [String: CUDAAlgorithmChoice] = [:]
    private var otherLines: [Substring] = []

    init(device: CUDADeviceInfo, cudnnVersion: Int) {
        path = CUDAKernelCompiler.cacheFolder + "/cudnn-algorithms.tsv"
        prefix = "\(device.name.replacingOccurrences(of: "\t", with: " "))\tcudnn\(cudnnVersion)\t\(Self.generation)"
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: "\t", omittingEmptySubsequences: false)
                let n = parts.count
                if n >= 6, parts[2] == Self.generation, let a = Int32(parts[n - 3]), let m = Int32(parts[n - 2]),
                   let bytes = Int(parts[n - 1]) {
                    entries[parts.dropLast(3).joined(separator: "\t")] = CUDAAlgorithmChoice(algorithm: a, mathType: m, workspace: bytes)
                } else {
                    otherLines.append(line)
                }
            }
        }
    }

    func key(_ s: ConvolutionShape, _ d: ConvolutionDirection, _ variant: ConvolutionVariant, _ policy: CUDAAlgorithmPolicy) -> String {
        "\(prefix)\t\(variant.precision.rawValue)\(variant.layout == .ndhwc ? "-ndhwc" : "")\(policy == .fastest ? "-fastest" : "")"
            + "\t\(s.inChannels)x\(s.outChannels)x\(s.extent)\t\(d.rawValue)"
    }

    func lookup(_ key: String) -> CUDAAlgorithmChoice? { entries[key] }

    func store(_ key: String, _ choice: CUDAAlgorithmChoice) {
        entries[key] = choice
        let lines = otherLines.map(String.init) + entries.keys.sorted().map {
            let c = entries[$0]!
            return "\($0)\t\(c.algorithm)\t\(c.mathType)\t\(c.workspace)"
        }
        try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                 withIntermediateDirectories: true)
        try? AtomicFile.write(Data((lines.joined(separator: "\n") + "\n").utf8), to: path)  // best effort, like the folder above
    }
}

extension CUDABackend {
    /// The precision and layout the backend runs its convolutions in.
    public var convolutionVariant: ConvolutionVariant { ConvolutionVariant(math.convolutionPrecision, layout) }

    /// The element format cuDNN's tensors take in this math: bfloat16 for bf16, float32 for tf32 and fp32.
    var convolutionFormat: ElementFormat { math == .bf16 ? .bf16 : .fp32 }

    /// Whether a convolution runs on a staged copy of the operand `t` (channels-last order, or bfloat16 numbers of a
    /// float32 tensor) rather than on `t` itself: bfloat16 activations in NCDHW are cuDNN's bf16 tensors as they are,
    /// but where a pass adds its result to them (`accumulating`), it writes a copy that is then added, so that the sum
    /// is rounded from the bfloat16 result (as PyTorch adds two bfloat16 gradients, and as the NDHWC path does).
    func stages(_ t: TensorRef, accumulating: Bool = false) -> Bool {
        layout == .ndhwc || format(t) != convolutionFormat || (accumulating && format(t) == .bf16)
    }

    /// The most workspace one convolution may have: half the free device memory, at most 8 GiB (no 3x3x3 algorithm
    /// of the paper's sizes was seen to want more: 1.5 GiB at most, tf32 NCDHW at 128^3 on an H200).
    func convolutionWorkspaceCap() -> Int {
        var free = 0, total = 0
        _ = ifcn_cu_mem_get_info(&free, &total)
        return min(free / 2, 8 << 30)
    }

    /// The most workspace the algorithm search offers cuDNN for `shape` (within `convolutionWorkspaceCap`): four
    /// times the convolution's largest tensor in float32, at least 64 MiB. On the H200 every fastest deterministic
    /// algorithm of the paper's convolutions wanted at most 2.3 times that tensor, or under 64 MiB (the most: tf32
    /// NCDHW, 128->64 at 128^3, 1,549 MiB beside a 1 GiB input); the bound keeps slower algorithms with larger
    /// appetites (explicit GEMM, FFT) from making a search hold gigabytes.
    static func searchWorkspaceBound(_ shape: ConvolutionShape) -> Int {
        let largest = max(shape.inChannels, shape.outChannels) * shape.extent.voxels * 4
        return max(4 * largest, 64 << 20)
    }

    func growConvolutionWorkspace(to bytes: Int) {
        if bytes > convolutionWorkspaceBytes { convolutionWorkspaceBytes = (bytes + (1 << 20) - 1) & ~((1 << 20) - 1) }
    }

    /// After an algorithm search: the workspace holds what the chosen algorithms need (`bytes` among them), no more;
    /// the search's larger allocation is given back.
    func keepConvolutionWorkspace(_ bytes: Int) {
        growConvolutionWorkspace(to: bytes)
        if heldWorkspaceBytes(.convolution) > max(convolutionWorkspaceBytes, 256) { releaseWorkspace(.convolution) }
    }

    /// The shared convolution workspace, at its current size.
    var convolutionWorkspace: (address: UInt64, bytes: Int) {
        (workspace(.convolution, bytes: convolutionWorkspaceBytes), convolutionWorkspaceBytes)
    }

    /// The convolution's descriptors, with the algorithm for `direction` chosen (first use:
    /// cudnnFind...Ex over deterministic algorithms, or the choice cached on disk). Find...Ex writes the pass's
    /// output: into the output itself when the pass is about to overwrite it (`outputOverwritten`), else into
    /// scratch memory that is given back once the algorithm is chosen.
    func convolution(_ shape: ConvolutionShape, _ direction: ConvolutionDirection,
                     x: UInt64, w: UInt64, y: UInt64, outputOverwritten: Bool) -> OpaquePointer {
        bind()
        let conv: OpaquePointer
        if let c = convolutions[shape] {
            conv = c
        } else {
            var c: OpaquePointer?
            let e = shape.extent
            checkDNN(ifcn_conv3_create_variant(&c, Int32(shape.inChannels), Int32(shape.outChannels), Int32(e.d), Int32(e.h),
                                               Int32(e.w), convolutionVariant.precision.shimCode, layout.shimCode),
                     "cudnn descriptors for \(shape)")
            conv = c!
            convolutions[shape] = conv
        }
        guard ifcn_conv3_algorithm(conv, direction.rawValue) < 0 else { return conv }
        let key = algorithmCache.key(shape, direction, convolutionVariant, algorithmPolicy)
        if let cached = algorithmCache.lookup(key) {
            ifcn_conv3_set_algorithm(conv, direction.rawValue, cached.algorithm, cached.mathType)
            growConvolutionWorkspace(to: cached.workspace)
            return conv
        }
        // Find...Ex writes its output. Where the pass accumulates into it, give Find scratch memory so that what
        // it holds is not touched; the paper's size would otherwise hold up to 1 GiB of scratch (the 128-channel
        // data gradient at 128^3) for the rest of the run.
        let scratch: UInt64
        if outputOverwritten {
            scratch = direction == .forward ? y : direction == .backwardData ? x : w
        } else {
            let outputBytes: Int
            switch direction {
            case .forward: outputBytes = shape.outChannels * shape.extent.voxels * 4
            case .backwardData: outputBytes = shape.inChannels * shape.extent.voxels * 4
            case .backwardFilter: outputBytes = shape.outChannels * shape.inChannels * 27 * 4
            }
            scratch = workspace(.convolutionFind, bytes: outputBytes)
        }
        defer { if !outputOverwritten { releaseWorkspace(.convolutionFind) } }
        let deterministicOnly = algorithmPolicy == .deterministic
        // Find...Ex times only the algorithms whose workspace it is given: give it what the allowed candidates of
        // cuDNN's heuristics ask for (within the shape's bound), so that the fastest is among those timed, however
        // much workspace it needs; afterwards the workspace keeps only what the chosen algorithms need.
        let cap = convolutionWorkspaceCap(), bound = min(cap, Self.searchWorkspaceBound(shape))
        func wanted(_ deterministic: Bool, within limit: Int) -> Int {
            var bytes = 0
            _ = ifcn_conv3_workspace_wanted(cudnn, conv, direction.rawValue, limit, deterministic ? 1 : 0, &bytes)
            return bytes
        }
        var findBytes = max(convolutionWorkspaceBytes, wanted(deterministicOnly, within: bound))
        // The first allowed algorithm of Find's ranking (fastest first) that ran within its workspace.
        func find(deterministic: Bool) -> (status: Int32, chosen: ifcn_conv3_candidate?) {
            let ws = (address: workspace(.convolution, bytes: max(findBytes, 1)), bytes: findBytes)
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
            guard r == 0 else { return (r, nil) }
            let chosen = candidates.prefix(Int(count)).first {
                $0.status == 0 && $0.workspace_bytes <= ws.bytes && (!deterministic || $0.deterministic != 0)
                    && ifcn_conv3_allows(conv, direction.rawValue, $0.algorithm, $0.math_type) != 0
            }
            return (0, chosen)
        }
        var (status, chosen) = find(deterministic: deterministicOnly)
        if chosen == nil {
            // None allowed within the bound: whatever the cap allows.
            findBytes = max(findBytes, wanted(deterministicOnly, within: cap))
            (status, chosen) = find(deterministic: deterministicOnly)
        }
        if chosen == nil && deterministicOnly {
            // Last resort: an algorithm that may not give the same bits on every run. Say so.
            findBytes = max(findBytes, wanted(false, within: cap))
            (status, chosen) = find(deterministic: false)
            if let c = chosen {
                StandardError.write("warning: cuDNN has no deterministic \(direction) algorithm for \(shape); using algorithm "
                                    + "\(c.algorithm), so results of this shape may differ in the last bits between runs")
            }
        }
        guard let c = chosen else {
            fatalError("cuDNN: no \(deterministicOnly ? "deterministic " : "")\(direction) algorithm for \(shape) within "
                       + "\(findBytes >> 20) MiB of workspace (Find: \(String(cString: ifcn_cudnn_error_string(status))))")
        }
        let algorithm = c.algorithm, needed = c.workspace_bytes
        // Under the math type Find ran it with (cuDNN may list an algorithm under another than the descriptor's).
        ifcn_conv3_set_algorithm(conv, direction.rawValue, algorithm, c.math_type)
        keepConvolutionWorkspace(needed)
        algorithmCache.store(key, CUDAAlgorithmChoice(algorithm: algorithm, mathType: c.math_type, workspace: needed))
        return conv
    }

    /// One pass of a convolution over `x` [cin, extent], `w` [cout, cin, 3, 3, 3] and `y` [cout, extent]: forward
    /// writes y, backward data writes x from the output gradient in y, backward filter writes w from x and the output
    /// gradient in y; `accumulate` adds to what the pass writes. An operand ifcn holds in another order or format than
    /// cuDNN takes (`stages`) is copied into cuDNN's (`StagedOperand`), and a result so staged is copied back into
    /// ifcn's tensor, adding there when it accumulates.
    private func runConvolution(_ shape: ConvolutionShape, _ direction: ConvolutionDirection,
                                x: TensorRef, w: TensorRef, y: TensorRef, accumulate: Bool) {
        // Channels-last copies are not padded to a multiple of 8 channels: on the H200 the network's 2-channel input
        // ran faster unpadded in both tensor-core maths (first layer, 128^3: tf32 forward 0.50 ms against 1.31 padded
        // to 8, backward filter 1.33 against 2.93; bf16 1.41 against 1.66 and 0.59 against 2.04; bench --conv-sweep).
        let operands = StagedOperand.operands(of: shape, paddedTo: shape.inChannels)
        // The data-gradient pass right after the weight-gradient pass of the same output gradient finds its copy current.
        let outputGradientStaged = direction == .backwardData && stagedOutputGradient.map {
            $0.queuedWork == queuedWork && $0.address == pointer(y) && $0.count == y.count
        } == true
        stagedOutputGradient = nil
        func address(_ t: TensorRef, _ operand: StagedOperand, _ slot: WorkspaceSlot, writtenBy pass: ConvolutionDirection,
                     current: Bool = false) -> UInt64 {
            guard stages(t, accumulating: direction == pass && accumulate) else { return pointer(t) }
            let copy = workspace(slot, bytes: max(operand.stagedCount, 1) * convolutionVariant.precision.bytes)
            if direction != pass && !current { stage(t, operand, into: copy) }
            return copy
        }
        let xa = address(x, operands.input, .stagedInput, writtenBy: .backwardData)
        let wa = address(w, operands.filter, .stagedFilter, writtenBy: .backwardFilter)
        let ya = address(y, operands.output, .stagedOutput, writtenBy: .forward, current: outputGradientStaged)
        if outputGradientStaged { stagingCopiesReused += 1 }
        // Unstaged, cuDNN adds (beta 1); staged, it writes the copy, and copying back adds.
        let written = direction == .forward ? y : direction == .backwardData ? x : w
        let staged = stages(written, accumulating: accumulate)
        let beta: Float = !staged && accumulate ? 1 : 0
        let conv = convolution(shape, direction, x: xa, w: wa, y: ya, outputOverwritten: beta == 0)
        let ws = convolutionWorkspace
        queuedWork += 1
        let status: Int32
        switch direction {
        case .forward: status = ifcn_conv3_forward(cudnn, conv, xa, wa, beta, ya, ws.address, ws.bytes)
        case .backwardData: status = ifcn_conv3_backward_data(cudnn, conv, ya, wa, beta, xa, ws.address, ws.bytes)
        case .backwardFilter: status = ifcn_conv3_backward_filter(cudnn, conv, xa, ya, beta, wa, ws.address, ws.bytes)
        }
        checkDNN(status, "convolution \(direction) \(shape), \(convolutionVariant)")
        if staged {
            switch direction {
            case .forward: unstage(ya, operands.output, into: y, accumulate: accumulate)
            case .backwardData: unstage(xa, operands.input, into: x, accumulate: accumulate)
            case .backwardFilter: unstage(wa, operands.filter, into: w, accumulate: accumulate)
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
        // Neither wrote the output gradient: its staged copy stays current for the data-gradient pass.
        if stages(gradOutput) { stagedOutputGradient = (pointer(gradOutput), gradOutput.count, queuedWork) }
    }
}
