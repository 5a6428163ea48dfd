import Foundation
import IFCNDistributed
import IFCNEngine
import IFCNSupport

/// How a run ended without an error.
public enum TrainingOutcome: Equatable, Sendable {
    /// Every iteration ran (or there was nothing to do).
    case finished
    /// A stop signal ended it after `iteration`, whose checkpoint is `latest`.
    case stopped(signal: Int32, iteration: Int)
}

/// The checks of every step boundary: divergence and stop requests, agreed by all ranks in one small
/// allreduce so that every rank takes the same decision at the same iteration.
extension Trainer {
    /// Ranks agree after the gradient allreduce and before the update. A non-finite loss on any rank, or a
    /// non-finite averaged gradient (the same on every rank: a NaN or infinity in any rank's gradient spreads
    /// to the mean), stops the run before the weights are touched, so no checkpoint with non-finite values
    /// is ever written. Returns the stop signal any rank received, if one did.
    func agree(_ s: Session, iteration it: Int, loss: Double, gradientNormSquared: Double, signal: Int32?) throws -> Int32? {
        var flags = [Double(signal ?? 0), loss.isFinite && gradientNormSquared.isFinite ? 0 : 1]
        comm.allreduceMax(&flags)
        if flags[1] > 0 {
            let last = s.lastCheckpoint.map { "the last checkpoint, iteration \($0), holds finite weights" } ?? "no checkpoint was written"
            throw TrainingError(String(format: "training diverged at iteration %d: the loss or the averaged gradient is not finite "
                                       + "(rank %d: loss %g, gradient norm %g); is --lr %g too high? Stopped before the update: %@",
                                       it, comm.rank, loss, gradientNormSquared.squareRoot(), Double(options.learningRate(at: it, ranks: comm.size)), last),
                                collective: true)
        }
        return flags[0] > 0 ? Int32(flags[0]) : nil
    }

    /// Rank 0 refuses to write a checkpoint holding a non-finite number (a last line of defence: the step
    /// check stops a diverging run before its weights change).
    static func checkFinite(_ tensors: KeyValuePairs<String, [Float]>, iteration: Int) throws {
        for (name, values) in tensors {
            if let i = values.firstIndex(where: { !$0.isFinite }) {
                throw TrainingError("refusing to write the checkpoint of iteration \(iteration): \(name)[\(i)] is \(values[i])")
            }
        }
    }
}
