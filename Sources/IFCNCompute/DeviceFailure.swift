import Foundation
import IFCNSupport

/// What a process does when its device fails under it: a driver error in the middle of the work (the GPU
/// fell off the bus, an uncorrectable memory error, a kernel fault, device memory exhausted). The work the
/// device holds cannot continue, so the process says who it is, which device failed and how, and what stays
/// safe, and ends; under MPI the trainer makes that end the whole job at once (`terminate`), so no rank is
/// left waiting. Checkpoints are written atomically, so the last one stays resumable.
public enum DeviceFailure {
    /// Exit status of a process that lost its device.
    public static let exitCode: Int32 = 74
    /// Who this process is, for the message (the trainer: "rank 1 of 4 on host node07").
    nonisolated(unsafe) public static var owner: String?
    /// What stays safe and how to continue (the trainer: the last checkpoint and --resume).
    nonisolated(unsafe) public static var recovery: String?
    /// Ends the process or job with the status and message (the trainer: MPI_Abort of every rank).
    nonisolated(unsafe) public static var terminate: (Int32, String) -> Never = { code, message in
        StandardError.write(message)
        exit(code)
    }

    /// The one-line report: owner, device, failed call and the library's reason, then the recovery.
    public static func message(device: String, call: String, reason: String) -> String {
        "error: " + (owner.map { $0 + ": " } ?? "") + "lost \(device): \(call) failed: \(reason)"
            + (recovery.map { ". " + $0 } ?? "")
    }

    /// Reports the failure and ends the process (or, under the trainer, the job).
    public static func stop(device: String, call: String, reason: String) -> Never {
        terminate(exitCode, message(device: device, call: call, reason: reason))
    }
}
