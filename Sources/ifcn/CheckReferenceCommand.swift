import ArgumentParser
import Foundation
import IFCNEngine

struct CheckReferenceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-reference",
        abstract: "Run a PyTorch reference fixture through the engine and compare every tensor.")

    @Argument(help: "Fixture .safetensors (format of shared/reference/README.md).")
    var fixture: String

    @Option(help: "Compute threads (default: all cores).")
    var threads: Int?

    @Flag(help: "Print only failures and the summary.")
    var quiet = false

    func run() throws {
        let report: ReferenceCheckReport
        do { report = try ReferenceCheck.run(path: fixture, threads: threads) } catch {
            throw CLIError("\(error)")
        }
        print("reference check \(fixture): \(report.config)")
        for c in report.comparisons where !quiet || !c.passed {
            let flag = c.passed ? "ok  " : "FAIL"
            print(String(format: "%@ %-48@ relL2 %.3e  maxAbs %.3e", flag, c.name as NSString, c.relativeL2, c.maxAbs))
        }
        for s in report.skipped { print("skipped \(s) (not in fixture)") }
        let failed = report.comparisons.filter { !$0.passed }.count
        print("\(report.comparisons.count - failed) passed, \(failed) failed")
        if failed > 0 { throw ExitCode(1) }
    }
}
