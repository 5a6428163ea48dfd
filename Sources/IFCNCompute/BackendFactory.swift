import Foundation
import IFCNSupport

/// Which compute backend a command runs on.
public enum BackendKind: String, CaseIterable, Sendable {
    /// CUDA when a GPU and the NVIDIA libraries load, otherwise the CPU (saying why).
    case auto
    case cpu
    case cuda
}

/// The one place that builds a compute backend.
public enum Backends {
    /// The rank's index among the ranks of its node (Open MPI, Slurm, torchrun conventions), 0 alone.
    public static var localRank: Int {
        let env = ProcessInfo.processInfo.environment
        for key in ["OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID", "LOCAL_RANK"] {
            if let v = env[key].flatMap(Int.init) { return v }
        }
        return 0
    }

    /// `kind` from the command line, else `IFCN_BACKEND`, else auto.
    public static func resolve(_ kind: BackendKind?) throws -> BackendKind {
        if let kind { return kind }
        guard let env = ProcessInfo.processInfo.environment["IFCN_BACKEND"], !env.isEmpty else { return .auto }
        guard let k = BackendKind(rawValue: env) else {
            throw CUDAError("IFCN_BACKEND='\(env)' is not one of \(BackendKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return k
    }

    /// Builds the backend. CPU: `threads` compute threads (default all cores). CUDA: the GPU of
    /// index `localRank` modulo the GPUs visible (`CUDA_VISIBLE_DEVICES` is honoured by the driver),
    /// with `gpuMath` and `gpuLayout` (default: the math's, `GPUMath.defaultLayout(activations:)`) for the convolutions, and a
    /// training network's activations in `gpuActivations` (bfloat16 only with bf16 math; default: the math's,
    /// `GPUMath.defaultActivations`). `note` receives one line
    /// when auto falls back to the CPU, which ignores the GPU's options.
    public static func make(_ kind: BackendKind, threads: Int? = nil, localRank: Int = Backends.localRank,
                            gpuMath: GPUMath = .fp32, gpuLayout: TensorLayout? = nil, gpuActivations: ElementFormat? = nil,
                            note: (String) -> Void = { _ in }) throws -> any ComputeBackend {
        let gpuActivations = gpuActivations ?? gpuMath.defaultActivations
        let gpuLayout = gpuLayout ?? gpuMath.defaultLayout(activations: gpuActivations)
        _ = try ConvolutionAlgorithm.override()  // a bad IFCN_CONV_ALGORITHM fails here, before any work
        // and a bad IFCN_EMULATE_BF16 or IFCN_EMULATE_GPU_MATH, or both at once
        let bfloat16Inference = try BFloat16.emulationRequested(), emulatedGPUMath = try GPUMath.emulationRequested()
        if bfloat16Inference && emulatedGPUMath != .fp32 {
            throw ConvolutionAlgorithmError(message: "\(BFloat16.environmentKey) and \(GPUMath.emulationKey) emulate two "
                                            + "different reduced precisions: set one of them")
        }
        // and a bad IFCN_EMULATE_GPU_ACTIVATIONS, or one without the bf16 math its format needs
        if try ElementFormat.emulationRequested() == .bf16 && emulatedGPUMath != .bf16 {
            throw ConvolutionAlgorithmError(message: "\(ElementFormat.emulationKey)=bf16 needs \(GPUMath.emulationKey)=bf16, "
                                            + "as --gpu-activations bf16 needs --gpu-math bf16")
        }
        let algorithms = try CUDAAlgorithmPolicy.fromEnvironment()  // and a bad IFCN_CUDNN_ALGORITHMS
        _ = try CUDABackend.uploadSlotBytes()                        // and a bad IFCN_CUDA_UPLOAD_SLOT_BYTES
        if gpuActivations == .bf16 && gpuMath != .bf16 && kind != .cpu {  // before any GPU is opened
            throw CUDAError("--gpu-activations bf16 needs --gpu-math bf16 (cuDNN's \(gpuMath.rawValue) math takes float32 tensors)")
        }
        switch kind {
        case .cpu:
            return cpu(threads: threads)
        case .cuda:
            return try CUDABackend(deviceOrdinal: localRank, math: gpuMath, layout: gpuLayout, activations: gpuActivations,
                                   algorithms: algorithms)
        case .auto:
            let inventory = CUDAInventory.probe()
            if inventory.usable {
                return try CUDABackend(deviceOrdinal: localRank, math: gpuMath, layout: gpuLayout, activations: gpuActivations,
                                       algorithms: algorithms, inventory: inventory)
            }
            note("backend: cpu (CUDA not usable: \(inventory.problems.first ?? "no GPU"))")
            return cpu(threads: threads)
        }
    }

    /// `backend` with every call marked on its clock, so that spans of work split by kind of kernel (`ifcn bench --profile`).
    public static func profiling(_ backend: any ComputeBackend) -> ProfilingBackend { ProfilingBackend(backend) }

    /// The CPU backend (it cannot fail): `threads` compute threads, default all cores.
    public static func cpu(threads: Int? = nil) -> CPUBackend { CPUBackend(threads: threads) }
}

extension Backends {
    /// CPU threads per rank: `IFCN_THREADS`, else the node's cores shared among its ranks.
    public static func defaultThreads(ranksOnNode: Int) -> Int {
        if let t = ProcessInfo.processInfo.environment["IFCN_THREADS"].flatMap(Int.init), t >= 1 { return t }
        return max(1, activeCoreCount / max(1, ranksOnNode))
    }

    /// The device a backend computes on, as failure messages name it.
    public static func deviceDescription(_ backend: any ComputeBackend) -> String {
        (backend as? CUDABackend)?.deviceDescription ?? "the CPU (\(backend.threads) thread(s))"
    }

    /// One line naming the backend and its device.
    public static func describe(_ backend: any ComputeBackend) -> String {
        if let cuda = backend as? CUDABackend {
            let d = cuda.device
            return String(format: "backend cuda on GPU %d: %@ (%@, %.0f GiB), %@ convolutions", d.ordinal, d.name,
                          d.architecture, Double(d.memoryBytes) / 1_073_741_824, cuda.math.rawValue)
                + (cuda.layout == .ndhwc ? " on channels-last (NDHWC) copies" : "")
                + (cuda.activationFormat == .bf16 ? ", bf16 activations" : "")
                + (cuda.algorithmPolicy == .fastest
                   ? ", fastest cuDNN algorithms (\(CUDAAlgorithmPolicy.environmentKey)=fastest: not bitwise repeatable)" : "")
        }
        let policy = (backend as? CPUBackend)?.emulatesGPUMath == true
            ? "without transforms for the emulated GPU math (direct, im2col where direct does not run)"
            : ConvolutionAlgorithm.policy
        return "backend \(backend.name), \(backend.threads) thread(s), convolutions: \(policy)"
    }
}
