import Dispatch

/// Prepares the next iteration's sample on a background thread while the current step runs.
final class Prefetcher: @unchecked Sendable {
    private let sampler: PatchSampler
    private let queue = DispatchQueue(label: "ifcn.prefetch")
    private var pending: (iteration: Int, group: DispatchGroup)?
    private var ready: TrainingSample?

    init(sampler: PatchSampler) { self.sampler = sampler }

    /// Starts drawing sample `iteration` in the background.
    func prefetch(_ iteration: Int) {
        let g = DispatchGroup()
        pending = (iteration, g)
        queue.async(group: g) { [self] in ready = sampler.sample(iteration: iteration) }
    }

    /// The sample of `iteration`: waits for the prefetched one, or draws it now.
    func take(_ iteration: Int) -> TrainingSample {
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
}
