import ArgumentParser
import Foundation
import IFCNSupport
import IFCNCompute
import IFCNEngine

struct CheckReferenceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-reference",
        abstract: "Run a PyTorch reference fixture through the engine and compare every tensor.")

    @Argument(help: "Fixture .safetensors (format of docs/REFERENCE_FIXTURES.md).")
    var fixture: String

    @Option(help: "Compute threads (default: all cores).")
    var threads: Int?

    @Flag(help: "Print only failures and the summary.")
    var quiet = false

    @OptionGroup var compute: BackendOptions

    @Flag(help: "Run the fixture twice on the backend and require bit-identical results.")
    var determinism = false

    @Flag(name: .customLong("compare-cpu"), help: "Also run on the CPU and require every tensor within the README tolerance of the CPU's result (with --pytorch-baseline, a tensor PyTorch float32 also misses: both results within their accepted error of the reference).")
    var compareCPU = false

    @Option(name: .customLong("pytorch-baseline"),
            help: "JSON of PyTorch float32's own errors (tools/pytorch_f32_baseline.py): a tensor PyTorch float32 also misses passes at up to 1.5x PyTorch's error.")
    var pytorchBaseline: String?

    func validate() throws {
        if let threads, let problem = ThreadCount.problem(threads) { throw ValidationError(problem) }
    }

    func run() throws {
        let report: ReferenceCheckReport
        let backend = try compute.make(threads: threads, defaultMath: .fp32)
        do { report = try ReferenceCheck.run(path: fixture, backend: backend) } catch {
            throw CLIError("\(error)")
        }
        var comparisons = report.comparisons
        var baseline: [String: Double]?
        if let pytorchBaseline {
            guard let data = FileManager.default.contents(atPath: pytorchBaseline),
                  let all = try? JSONSerialization.jsonObject(with: data) as? [String: [String: Double]] else {
                throw CLIError("\(pytorchBaseline): not a JSON object of {fixture: {tensor: error}}")
            }
            let key = (fixture as NSString).lastPathComponent
            guard let errors = all[key] else { throw CLIError("\(pytorchBaseline): no entry for \(key)") }
            baseline = errors
            comparisons = report.judged(pytorchFloat32Errors: errors)
        }
        print("reference check \(fixture): \(report.config) on \(Backends.describe(backend))")
        for (c, raw) in zip(comparisons, report.comparisons) where !quiet || !raw.passed {
            let flag = c.passed ? (raw.passed ? "ok  " : "ok* ") : "FAIL"
            print(String(format: "%@ %-48@ relL2 %.3e  maxAbs %.3e", flag, c.name as NSString, c.relativeL2, c.maxAbs))
        }
        for s in report.skipped { print("skipped \(s) (not in fixture)") }
        if zip(comparisons, report.comparisons).contains(where: { $0.passed && !$1.passed }) {
            print("ok*: misses the README tolerance, as PyTorch float32 does, within 1.5x PyTorch float32's error")
        }
        var failed = comparisons.filter { !$0.passed }.count
        var total = comparisons.count
        if determinism {
            let again = try ReferenceCheck.run(path: fixture, backend: backend)
            let differing = report.bitwiseDifferences(from: again)
            total += 1
            if differing.isEmpty {
                print("ok   determinism: \(report.computed.count) tensors bit-identical in a second run")
            } else {
                failed += 1
                print("FAIL determinism: \(differing.count) tensors differ in a second run: \(differing.prefix(5).joined(separator: ", "))")
            }
        }
        if compareCPU {
            let cpu = try ReferenceCheck.run(path: fixture, backend: Backends.cpu(threads: threads))
            let d = report.agreement(with: cpu, pytorchFloat32Errors: baseline)
            total += 1
            if let worst = d.first(where: { !$0.passed }) {
                failed += 1
                print(String(format: "FAIL backend agreement with the CPU: %@ relL2 %.3e (limit %.0e)", worst.name as NSString,
                             worst.relativeL2, ReferenceCheck.relativeL2Tolerance))
                for x in d.prefix(8) { print(String(format: "     %-48@ relL2 %.3e", x.name as NSString, x.relativeL2)) }
            } else {
                let worst = d.first(where: { $0.relativeL2 <= ReferenceCheck.relativeL2Tolerance })
                print(String(format: "ok   backend agreement with the CPU: %d tensors, largest relL2 %.3e (%@)", d.count,
                             worst?.relativeL2 ?? 0, (worst?.name ?? "-") as NSString))
                for x in d where x.relativeL2 > ReferenceCheck.relativeL2Tolerance {
                    print(String(format: "ok*  backend agreement with the CPU: %@ relL2 %.3e, ill-conditioned (PyTorch float32 "
                                 + "misses the tolerance too); both backends within their accepted error of the reference",
                                 x.name as NSString, x.relativeL2))
                }
            }
        }
        print("\(total - failed) passed, \(failed) failed")
        if failed > 0 { throw ExitCode(1) }
    }
}
