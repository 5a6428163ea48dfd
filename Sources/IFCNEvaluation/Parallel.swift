import Foundation

/// Wraps a value that the caller guarantees is used safely across threads (disjoint writes).
private struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
}

/// Runs `body(i)` for `i` in `0..<iterations` on all cores (DispatchQueue.concurrentPerform); one iteration runs
/// inline. Iterations must only write disjoint memory.
func parallelFor(_ iterations: Int, _ body: (Int) -> Void) {
    if iterations <= 0 { return }
    if iterations == 1 {
        body(0)
        return
    }
    withoutActuallyEscaping(body) { body in
        let shared = UncheckedSendable(value: body)
        DispatchQueue.concurrentPerform(iterations: iterations) { shared.value($0) }
    }
}

/// Cores to plan work chunks for.
var coreCount: Int { ProcessInfo.processInfo.activeProcessorCount }
