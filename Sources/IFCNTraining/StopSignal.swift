import Foundation
import Synchronization

/// SIGTERM, SIGINT and SIGUSR1 as a request to stop training cleanly: Slurm sends SIGTERM on
/// preemption, at the time limit and on `scancel`, and srun passes it on to the ranks. Open MPI's
/// mpirun passes SIGTERM on too but kills the ranks about a second later, too soon to finish a long
/// step; it passes SIGUSR1 on and waits, so under mpirun send SIGUSR1.
///
/// The handler (installed with sigaction) only records the signal in an atomic and, on rank 0, writes a
/// fixed line to stderr (both async-signal-safe). The trainer reads the record at every step boundary;
/// all ranks agree on it (any rank's request stops everyone), finish the step, rank 0 writes `latest`
/// and the job exits with `exitCode`. A second signal ends the process at once with the signal's
/// default action.
public final class StopSignal: Sendable {
    /// Exit status of a run stopped by a signal after writing its checkpoint: EX_TEMPFAIL from
    /// sysexits.h ("temporary failure, try again"). It differs from 1 (an error) and from 128 + 15 = 143
    /// (killed by SIGTERM without a checkpoint), so a batch script can requeue on exactly this status.
    public static let exitCode: Int32 = 75
    public static let handled: [Int32] = [SIGTERM, SIGINT, SIGUSR1]

    /// Starts catching SIGTERM, SIGINT and SIGUSR1 (clearing an earlier request); `stop()` restores the default
    /// actions. With `announce` (rank 0) the first signal is acknowledged on stderr at once.
    public init(announce: Bool) {
        stopRequest.store(0, ordering: .relaxed)
        stopAnnounce.store(announce, ordering: .relaxed)
        for number in Self.handled { Self.install(number, handler: recordStopSignal) }
    }

    deinit { stop() }

    /// The first signal received, if any.
    public var requested: Int32? {
        let number = stopRequest.load(ordering: .relaxed)
        return number == 0 ? nil : number
    }

    /// Puts the default actions back.
    public func stop() {
        for number in Self.handled { signal(number, SIG_DFL) }
    }

    public static func name(_ number: Int32) -> String {
        switch number {
        case SIGTERM: "SIGTERM"
        case SIGINT: "SIGINT"
        case SIGUSR1: "SIGUSR1"
        default: "signal \(number)"
        }
    }

    private static func install(_ number: Int32, handler: @convention(c) (Int32) -> Void) {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = handler
        sigemptyset(&action.sa_mask)
        action.sa_flags = SA_RESTART
        sigaction(number, &action, nil)
    }
}

private let stopRequest = Atomic<Int32>(0)
private let stopAnnounce = Atomic<Bool>(false)
private let stopLine: StaticString = "ifcn: stop signal received: stopping after the current step (send it again to stop at once)\n"

/// The signal handler: async-signal-safe calls only (atomics, write, signal, raise).
private func recordStopSignal(_ number: Int32) {
    if stopRequest.compareExchange(expected: 0, desired: number, ordering: .relaxed).exchanged {
        if stopAnnounce.load(ordering: .relaxed) { _ = write(2, stopLine.utf8Start, stopLine.utf8CodeUnitCount) }
    } else {
        signal(number, SIG_DFL)
        raise(number)
    }
}
