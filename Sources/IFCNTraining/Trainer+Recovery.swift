import Foundation
import IFCNEngine
import IFCNSupport

/// Taking over a run folder, resuming from the newest loadable checkpoint, and stopping on a signal.
extension Trainer {
    /// Rank 0: locks the run folder against a second job, then clears what a killed write left behind.
    func claim(_ run: RunDirectory) throws -> RunLock {
        let lock = try RunLock(folder: run.path)
        if let note = lock.staleNote { log(note) }
        let stale = run.removeStaleTemporaries()
        if !stale.isEmpty {
            log("\(run.checkpoints): removed \(stale.count) temporary file(s) of an interrupted write: \(stale.joined(separator: ", "))")
        }
        return lock
    }

    /// Rank 0: `latest`, or when it is missing or does not load (a damaged file), the newest iter-N that
    /// loads, saying so.
    func loadResumable(_ s: Session) throws -> LoadedCheckpoint {
        let fm = FileManager.default
        let older = s.run.iterationCheckpointNames().map { s.run.checkpoints + "/" + $0 }
        guard fm.fileExists(atPath: s.run.latest) || !older.isEmpty else {
            throw TrainingError("\(s.run.latest): --resume given but no checkpoint exists")
        }
        var firstFailure: String?
        for path in [s.run.latest] + older {
            do {
                guard fm.fileExists(atPath: path) else { throw TrainingError("\(path): does not exist") }
                let loaded = try Checkpoint.load(path: path, config: s.config)
                guard let t = loaded.training else { throw TrainingError("\(path): holds no training state") }
                guard t.iteration >= 0, t.adamStep >= 0 else {
                    throw TrainingError("\(path): iteration \(t.iteration) and adam_step \(t.adamStep) must not be negative")
                }
                if let firstFailure { log("warning: cannot resume from \(firstFailure); falling back to \(path)") }
                return loaded
            } catch {
                if firstFailure == nil { firstFailure = "\(error)" } else { log("warning: cannot resume from \(error) either") }
            }
        }
        throw TrainingError("\(firstFailure ?? s.run.latest), and no iter-N checkpoint loads either")
    }

    /// After the ranks agreed to stop at `iteration`: its checkpoint (unless the epoch's end just wrote
    /// it), then the outcome that makes `ifcn train` exit with `StopSignal.exitCode`.
    func stopEarly(_ s: Session, signal: Int32, iteration it: Int, checkpointed: Bool) throws -> TrainingOutcome {
        if !checkpointed {
            try synchroniseModel(s, iteration: it)
            try collectively(onlyRoot: true) { try checkpoint(s, iteration: it, isBest: false) }
        }
        rootLog("stopped by \(StopSignal.name(signal)) after iteration \(it) of \(options.iterations): \(s.run.latest) holds it; "
                + "run again with --resume to continue (exit status \(StopSignal.exitCode))")
        return .stopped(signal: signal, iteration: it)
    }
}
