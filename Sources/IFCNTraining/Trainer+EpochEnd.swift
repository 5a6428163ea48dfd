import Foundation
import IFCNCompute

/// What rank 0 knows when an epoch's checkpoint and metrics line are written (for `Trainer.afterEpoch`).
public struct EpochEnd: Sendable {
    public var run: RunDirectory
    public var iteration: Int
    public var isBest: Bool
    public var ranks: Int
    /// "2 rank(s) x 1 thread(s)", or the GPU per rank.
    public var hardware: String
}

extension Trainer {
    /// Rank 0, after the checkpoint: the best epoch's validation cases are kept, then `afterEpoch` runs (the
    /// report). Failures here are warnings: they never stop training.
    func finishEpoch(_ s: Session, iteration: Int, isBest: Bool) {
        if isBest {
            do { try s.run.promoteValidation(iteration: iteration) } catch { log("warning: \(error)") }
        }
        let perRank = s.backend is CPUBackend ? "\(s.threads) thread(s)" : s.backend.name
        afterEpoch?(EpochEnd(run: s.run, iteration: iteration, isBest: isBest, ranks: comm.size,
                             hardware: "\(comm.size) rank(s) x \(perRank)"))
    }
}
