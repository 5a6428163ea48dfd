import ArgumentParser
import Foundation
import IFCNCompute
import IFCNEngine

/// `ifcn check-backends`: every kernel on a backend against the CPU, layer by layer.
struct CheckBackendsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-backends",
        abstract: "Run every kernel on a backend and on the CPU with the same random inputs and compare (relative L2 <= 1e-5; with --gpu-activations bf16, what a kernel writes in bfloat16 within one bfloat16 rounding).")

    @OptionGroup var compute: BackendOptions
    @Option(help: "Channels of the test tensors.") var channels: Int = 8
    @Option(help: "Extent D,H,W of the test tensors (even).") var extent: String = "16,20,24"
    @Option(help: "CPU threads for the reference.") var threads: Int?

    func run() throws {
        let dims = extent.split(separator: ",").compactMap { Int($0) }
        guard dims.count == 3, dims.allSatisfy({ $0 >= 2 && $0 % 2 == 0 }) else {
            throw ValidationError("--extent must be three even sizes >= 2, e.g. 16,20,24")
        }
        let candidate = try compute.make(threads: threads, defaultMath: .fp32)
        let reference = Backends.cpu(threads: threads)
        let results = BackendAgreement.run(reference: reference, candidate: candidate,
                                           channels: channels, extent: Extent3(dims[0], dims[1], dims[2]))
        for r in results {
            print(String(format: "%@ %-44@ relL2 %.3e  maxAbs %.3e", r.passed ? "ok  " : "FAIL", r.name as NSString,
                         r.relativeL2, r.maxAbs))
        }
        let failed = results.filter { !$0.passed }.count
        print("\(results.count - failed) passed, \(failed) failed (\(Backends.describe(candidate)) against the \(reference.name == "cpu" ? "CPU" : reference.name))")
        if failed > 0 { throw ExitCode(1) }
    }
}
