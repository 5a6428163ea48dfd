import Foundation
import IFCNSupport

/// Prepares the next iteration's sample on a background thread while the current step runs.
final class Prefetcher: @unchecked Sendable {
    private let sampler: PatchSampler
    private var pending: (iteration: Int, job: BackgroundJob<TrainingSample>)?
    /// Seconds `take` spent waiting for samples (the step waited on sampling or the disk), and how often.
    private(set) var waitSeconds = 0.0
    private(set) var takes = 0

    init(sampler: PatchSampler) { self.sampler = sampler }

    /// Starts drawing sample `iteration` in the background (after any sample still being drawn).
    func prefetch(_ iteration: Int) {
        _ = pending?.job.wait()
        let sampler = sampler
        pending = (iteration, BackgroundJob(label: "ifcn.prefetch") { sampler.sample(iteration: iteration) })
    }

    /// The sample of `iteration`: waits for the prefetched one, or draws it now.
    func take(_ iteration: Int) -> TrainingSample {
        let t0 = Date()
        takes += 1
        defer { waitSeconds += Date().timeIntervalSince(t0) }
        let p = pending
        pending = nil
        if let p, p.iteration == iteration { return p.job.wait() }
        _ = p?.job.wait()
        return sampler.sample(iteration: iteration)
    }

    /// One log line: how long the steps waited for their samples.
    var summary: String {
        String(format: "sample prefetch: the steps waited %.2f s in all for their samples (%.1f ms per iteration over %d)",
               waitSeconds, 1000 * waitSeconds / Double(max(takes, 1)), takes)
    }
}
