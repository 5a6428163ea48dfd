import Foundation
import IFCNSupport

extension TrainingOptions {
    /// Checks every number a user gives `train` before anything starts; the error names the option.
    public func validate() throws {
        func fail(_ message: String) -> TrainingError { TrainingError(message, collective: true) }
        guard iterations >= 1 else { throw fail("--iterations must be at least 1, got \(iterations)") }
        guard iterationsPerEpoch >= 1 else { throw fail("--iters-per-epoch must be at least 1, got \(iterationsPerEpoch)") }
        guard learningRate.isFinite, learningRate > 0 else {
            throw fail("--lr must be a finite number above 0, got \(learningRate)")
        }
        if let bad = learningRateSteps.first(where: { $0 < 0 }) { throw fail("--lr-steps must not be negative, got \(bad)") }
        guard warmupIterations >= 0 else { throw fail("--warmup-iterations must be 0 or more, got \(warmupIterations)") }
        if let t = threads { try Self.checkThreads(t, source: "--threads") }
        if let v = validationCases, v < 0 { throw fail("--val-cases must be 0 or more, got \(v)") }
        guard keepCheckpoints >= 0 else { throw fail("--keep must be 0 or more, got \(keepCheckpoints)") }
        guard progressInterval.isFinite, progressInterval >= 0 else {
            throw fail("--progress-seconds must be a finite number of seconds >= 0, got \(progressInterval)")
        }
        guard collectiveTimeout.isFinite, collectiveTimeout > 0 else {
            throw fail("--collective-timeout must be a finite number of seconds above 0, got \(collectiveTimeout)")
        }
    }

    /// A thread count from `source` (an option or IFCN_THREADS) must be in `ThreadCount.range`.
    static func checkThreads(_ t: Int, source: String) throws {
        if let problem = ThreadCount.problem(t, option: source) { throw TrainingError(problem, collective: true) }
    }
}
