import Dispatch

/// One piece of work that starts on a background thread when the job is made; `wait()` returns its value.
/// The one helper for work done ahead of the calling thread (the next training sample, the next scan read and
/// resampled) or behind it (a scan's outputs being written). Parallel loops inside the work may run at the same
/// time as the caller's: `parallelFor` gives the shared `WorkerPool` to whichever asks first and runs the other
/// through DispatchQueue.concurrentPerform, so neither waits for the other.
public final class BackgroundJob<Value>: @unchecked Sendable {
    private let group = DispatchGroup()
    /// Written once by the work before it leaves `group`; read only after `group.wait()`.
    private var value: Value?

    /// Starts `work` on a serial queue of its own named `label` (shown in debuggers and crash reports).
    public init(label: String, _ work: @escaping () -> Value) {
        DispatchQueue(label: label).async(group: group) { [self] in value = work() }
    }

    /// Waits until the work has finished and returns its value (the same value on every call). Call it from
    /// one thread at a time.
    public func wait() -> Value {
        group.wait()
        return value!
    }
}
