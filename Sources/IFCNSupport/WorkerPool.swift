import Foundation
import Synchronization

/// The persistent threads behind `parallelFor`: `activeCoreCount - 1` workers that spin briefly (0.1 ms) after
/// each job and then sleep on a condition variable, so the many short parallel regions of a training step at small
/// patch sizes start without a thread wake-up and without allocating (DispatchQueue.concurrentPerform did both
/// for every region).
///
/// One job at a time: the caller publishes it, runs parts itself next to the workers, and returns when every
/// part has finished (it, too, spins briefly and then sleeps). Parts are claimed one by one from a shared counter, so which thread runs a part varies,
/// but the parts themselves (the static split chosen by the caller) never do. A caller that finds the pool
/// busy (a nested `parallelFor`, or another thread's job) gets `false` from `run` and falls back to
/// concurrentPerform, as before.
final class WorkerPool: @unchecked Sendable {
    static let shared = WorkerPool(workers: activeCoreCount - 1)

    /// Largest part count the claim word can hold (20 bits); larger jobs fall back.
    static let maximumParts = (1 << 20) - 1
    /// How long an idle worker keeps polling for the next job before it sleeps.
    static let spinNanoseconds: UInt64 = 100_000

    let workers: Int
    /// job (24 bits) | parts (20 bits) | next part to claim (20 bits): one word, so a worker that claims a part
    /// also learns, in the same atomic step, which job and how many parts it belongs to.
    private let claim = Atomic<UInt64>(0)
    private let finished = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)
    private let sleepers = Atomic<Int>(0)
    private let callerSleeps = Atomic<Bool>(false)
    private var job: UInt64 = 0
    /// The running job's body; only read by a thread holding a claimed, unfinished part of it.
    private var body: UnsafeRawPointer?
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let done = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var started = false

    init(workers: Int) {
        self.workers = max(0, workers)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
        pthread_cond_init(done, nil)
    }

    private static func pack(job: UInt64, parts: Int, next: Int) -> UInt64 {
        (job << 40) | (UInt64(parts) << 20) | UInt64(next)
    }

    /// Runs `body(part)` for every part in `0..<parts` on the pool and the calling thread, and waits.
    /// Returns false, having run nothing, when the pool cannot take the job (busy, no workers, too many parts).
    func run(parts: Int, _ body: (Int) -> Void) -> Bool {
        guard workers > 0, parts <= Self.maximumParts,
              busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return false }
        if !started { startWorkers() }
        withoutActuallyEscaping(body) { escaping in
            withUnsafePointer(to: escaping) { pointer in
                self.body = UnsafeRawPointer(pointer)
                job = (job + 1) & 0xFF_FFFF
                finished.store(0, ordering: .relaxed)
                claim.store(Self.pack(job: job, parts: parts, next: 0), ordering: .sequentiallyConsistent)
                if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                    pthread_mutex_lock(mutex)
                    pthread_cond_broadcast(condition)
                    pthread_mutex_unlock(mutex)
                }
                runParts(of: job)
                waitForParts(parts)
                self.body = nil
            }
        }
        busy.store(false, ordering: .releasing)
        return true
    }

    /// The caller's wait for the parts that workers still run: a short spin, then sleep until the last part ends.
    private func waitForParts(_ parts: Int) {
        let start = DispatchTime.now().uptimeNanoseconds
        var spins = 0
        while finished.load(ordering: .acquiring) < parts {
            spins += 1
            if spins & 255 == 0 && DispatchTime.now().uptimeNanoseconds - start > Self.spinNanoseconds {
                pthread_mutex_lock(mutex)
                callerSleeps.store(true, ordering: .sequentiallyConsistent)
                while finished.load(ordering: .sequentiallyConsistent) < parts { pthread_cond_wait(done, mutex) }
                callerSleeps.store(false, ordering: .relaxed)
                pthread_mutex_unlock(mutex)
                return
            }
        }
    }

    /// Claims and runs parts of `job` until none is left; returns whether it ran any.
    @discardableResult
    private func runParts(of job: UInt64) -> Bool {
        var ran = false
        var word = claim.load(ordering: .acquiring)
        while true {
            let parts = Int((word >> 20) & 0xF_FFFF), next = Int(word & 0xF_FFFF)
            guard word >> 40 == job, next < parts else { return ran }
            let (exchanged, current) = claim.compareExchange(
                expected: word, desired: word + 1, ordering: .acquiringAndReleasing)
            guard exchanged else { word = current; continue }
            Self.invoke(self.body!, next)
            ran = true
            if finished.add(1, ordering: .sequentiallyConsistent).newValue == parts
                && callerSleeps.load(ordering: .sequentiallyConsistent) {
                pthread_mutex_lock(mutex)
                pthread_cond_signal(done)
                pthread_mutex_unlock(mutex)
            }
            word = claim.load(ordering: .acquiring)
        }
    }

    /// Calls the job's body in a function of its own, so that any retain of the closure is balanced before the
    /// part is counted as finished (the caller's `withoutActuallyEscaping` checks that nothing kept it).
    @inline(never)
    private static func invoke(_ body: UnsafeRawPointer, _ part: Int) {
        body.assumingMemoryBound(to: ((Int) -> Void).self).pointee(part)
    }

    private func startWorkers() {
        started = true
        for _ in 0..<workers {
            let thread = Thread { [self] in workerLoop() }
            thread.name = "ifcn-worker"
            thread.start()
        }
    }

    private func workerLoop() {
        var seen: UInt64 = claim.load(ordering: .acquiring) >> 40
        while true {
            // Spin for a short while: the next region of a training step usually follows within microseconds.
            let start = DispatchTime.now().uptimeNanoseconds
            var spins = 0
            var current = claim.load(ordering: .acquiring) >> 40
            while current == seen {
                spins += 1
                if spins & 255 == 0 && DispatchTime.now().uptimeNanoseconds - start > Self.spinNanoseconds {
                    current = sleep(whileJobIs: seen)
                    break
                }
                current = claim.load(ordering: .acquiring) >> 40
            }
            seen = current
            runParts(of: current)
        }
    }

    /// Blocks until the published job differs from `seen`; returns the new job.
    private func sleep(whileJobIs seen: UInt64) -> UInt64 {
        pthread_mutex_lock(mutex)
        sleepers.add(1, ordering: .sequentiallyConsistent)
        var current = claim.load(ordering: .sequentiallyConsistent) >> 40
        while current == seen {
            pthread_cond_wait(condition, mutex)
            current = claim.load(ordering: .sequentiallyConsistent) >> 40
        }
        sleepers.subtract(1, ordering: .sequentiallyConsistent)
        pthread_mutex_unlock(mutex)
        return current
    }
}
