import Dispatch
import Foundation

/// Prepares the next iteration's sample on a background thread while the current step runs.
final class Prefetcher: @unchecked Sendable {
    private let sampler: PatchSampler
    private let queue = DispatchQueue(label: "ifcn.prefetch")
    private var pending: (iteration: Int, group: DispatchGroup)?
    private var ready: TrainingSample?
    /// Seconds `take` spent waiting for samples (the step waited on sampling or the disk), and how often.
    private(set) var waitSeconds = 0.0
    private(set) var takes = 0

    init(sampler: PatchSampler) { self.sampler = sampler }

    /// Starts drawing sample `iteration` in the background.
    func prefetch(_ iteration: Int) {
        let g = DispatchGroup()
        pending = (iteration, g)
        queue.async(group: g) { [self] in ready = sampler.sample(iteration: iteration) }
    }

    /// The sample of `iteration`: waits for the prefetched one, or draws it now.
    func take(_ iteration: Int) -> TrainingSample {
        let t0 = Date()
        takes += 1
        defer { waitSeconds += Date().timeIntervalSince(t0) }
        if let p = pending, p.iteration == iteration {
            p.group.wait()
            pending = nil
            let s = ready!
            ready = nil
            return s
        }
        pending?.group.wait()
        pending = nil
        return sampler.sample(iteration: iteration)
    }

    /// One log line: how long the steps waited for their samples.
    var summary: String {
        String(format: "sample prefetch: the steps waited %.2f s in all for their samples (%.1f ms per iteration over %d)",
               waitSeconds, 1000 * waitSeconds / Double(max(takes, 1)), takes)
    }
}
