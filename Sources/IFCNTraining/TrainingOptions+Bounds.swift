import Foundation

extension TrainingOptions {
    /// Most compute threads one rank may start: `threadsPerCore` times the CPUs of its node. More
    /// threads than cores only queue for the same cores (the kernels split their work statically, so
    /// the extra threads make every loop wait for the slowest share), and each costs a stack and scratch
    /// buffers: 100,000 threads took 11.7 GB before the first iteration.
    public static let threadsPerCore = 4
    public static var maxThreads: Int { threadsPerCore * max(1, ProcessInfo.processInfo.activeProcessorCount) }

    /// Checks every number a user gives `train` before anything starts; the error names the option.
    public func validate() throws {
        func fail(_ message: String) -> TrainingError { TrainingError(message, collective: true) }
        guard iterations >= 1 else { throw fail("--iterations must be at least 1, got \(iterations)") }
        guard iterationsPerEpoch >= 1 else { throw fail("--iters-per-epoch must be at least 1, got \(iterationsPerEpoch)") }
        guard learningRate.isFinite, learningRate > 0 else {
            throw fail("--lr must be a finite number above 0, got \(learningRate)")
        }
        if let bad = learningRateSteps.first(where: { $0 < 0 }) { throw fail("--lr-steps must not be negative, got \(bad)") }
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

    /// A thread count from `source` (an option or IFCN_THREADS) must be 1...maxThreads.
    static func checkThreads(_ t: Int, source: String) throws {
        guard (1...maxThreads).contains(t) else {
            throw TrainingError("\(source) must be between 1 and \(maxThreads) (\(threadsPerCore) x the \(ProcessInfo.processInfo.activeProcessorCount) "
                                + "CPUs here: more threads than that only compete for the same cores and cost memory), got \(t)",
                                collective: true)
        }
    }
}
