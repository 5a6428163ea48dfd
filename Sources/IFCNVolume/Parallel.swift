import Foundation

/// Runs `body(i)` for i in 0..<n on all cores (in chunks so tiny bodies stay cheap).
func parallelFor(_ n: Int, minimumChunk: Int = 1, _ body: (Int) -> Void) {
    guard n > 0 else { return }
    let workers = max(1, ProcessInfo.processInfo.activeProcessorCount)
    let chunks = min(n, max(1, min(workers * 4, n / max(1, minimumChunk))))
    if chunks == 1 {
        for i in 0..<n { body(i) }
        return
    }
    nonisolated(unsafe) let body = body
    DispatchQueue.concurrentPerform(iterations: chunks) { c in
        let lo = n * c / chunks, hi = n * (c + 1) / chunks
        for i in lo..<hi { body(i) }
    }
}

/// Runs `body(range)` over contiguous chunks of 0..<n on all cores.
func parallelChunks(_ n: Int, _ body: (Range<Int>) -> Void) {
    guard n > 0 else { return }
    let workers = max(1, ProcessInfo.processInfo.activeProcessorCount)
    let chunks = min(n, workers * 4)
    nonisolated(unsafe) let body = body
    DispatchQueue.concurrentPerform(iterations: chunks) { c in
        body((n * c / chunks)..<(n * (c + 1) / chunks))
    }
}
