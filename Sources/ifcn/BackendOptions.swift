import ArgumentParser
import Foundation
import IFCNCompute
import IFCNSupport

extension BackendKind: ExpressibleByArgument {}
extension GPUMath: ExpressibleByArgument {}
extension TensorLayout: ExpressibleByArgument {}
extension ElementFormat: ExpressibleByArgument {}

/// `--backend`, `--gpu-math`, `--gpu-layout` and `--gpu-activations`, shared by every command that computes.
struct BackendOptions: ParsableArguments {
    @Option(help: "Compute backend: auto (CUDA when a GPU and its libraries load, else CPU), cpu or cuda. Default: IFCN_BACKEND, else auto.")
    var backend: BackendKind?

    @Option(name: .customLong("gpu-math"), help: "Convolution math on the GPU: fp32, tf32 (tensor cores) or bf16 (bfloat16 operands summed in float32, as PyTorch's bf16 autocast; weights, batch norm, loss and Adam stay float32, activations in bfloat16 unless --gpu-activations fp32).")
    var gpuMath: GPUMath?

    @Option(name: .customLong("gpu-layout"), help: "Memory order of the convolutions' operands on the GPU: ncdhw (ifcn's own tensors, no copies) or ndhwc (channels-last: each convolution runs on channels-last copies of its operands, results copied back). Default: ndhwc with tf32 and with bf16 on float32 activations (faster on an H200: docs/BENCHMARKS.md); ncdhw with fp32 and with bf16 on its default bfloat16 activations (cuDNN then reads ifcn's bfloat16 tensors as they are, faster on an H200 than copies).")
    var gpuLayout: TensorLayout?

    @Option(name: .customLong("gpu-activations"), help: "Format of a training network's activations and their gradients on the GPU: fp32, or bf16 (with --gpu-math bf16, as PyTorch's bf16 autocast keeps them: half the memory and half the bytes moved; weights, batch-norm statistics, the loss's sums and Adam stay float32). Default: bf16 with --gpu-math bf16, else fp32.")
    var gpuActivations: ElementFormat?

    /// The backend for a single-process command; prints one line saying what runs where.
    func make(threads: Int?, defaultMath: GPUMath) throws -> any ComputeBackend {
        do {
            let kind = try Backends.resolve(backend)
            let b = try Backends.make(kind, threads: threads, gpuMath: gpuMath ?? defaultMath, gpuLayout: gpuLayout,
                                      gpuActivations: gpuActivations) {
                StandardError.write($0)
            }
            StandardError.write(Backends.describe(b))
            return b
        } catch {
            throw CLIError("\(error)")
        }
    }
}
