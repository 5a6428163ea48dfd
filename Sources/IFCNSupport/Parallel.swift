import Foundation

// Parallel loops over 0..<n. Every helper splits the work statically and deterministically: the same
// arguments always give the same parts, so results that depend on the split (partial sums, per-part
// random streams) do not change from run to run. All of them return when every part has finished.
// Parts run concurrently: a body must only write memory that no other part touches.

/// The number of cores this process may run on (at least 1).
public var activeCoreCount: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }

/// Runs `body(part)` for every part in `0..<parts`, concurrently, and waits: on the persistent `WorkerPool`
/// (no thread wake-up, no allocation), or through DispatchQueue.concurrentPerform when the pool is busy (nested
/// calls, another thread's loop). One part runs inline on the calling thread; zero or fewer parts run nothing.
public func parallelFor(parts: Int, _ body: (_ part: Int) -> Void) {
    if parts <= 1 {
        if parts == 1 { body(0) }
        return
    }
    if WorkerPool.shared.run(parts: parts, body) { return }
    DispatchQueue.concurrentPerform(iterations: parts, execute: body)
}

/// The half-open range of `part` when `total` items are split into `parts` contiguous, near-equal pieces:
/// `total * part / parts ..< total * (part + 1) / parts`.
@inlinable
public func partRange(_ part: Int, of parts: Int, total: Int) -> Range<Int> {
    (total * part / parts)..<(total * (part + 1) / parts)
}

/// The usual number of parts for `count` items: four per core, fewer when that would give parts shorter than
/// `minimumChunk` items, never more than `count` and at least 1 (0 when `count` is 0).
public func chunkCount(for count: Int, minimumChunk: Int = 1) -> Int {
    min(count, max(1, min(activeCoreCount * 4, count / max(1, minimumChunk))))
}

/// Runs `body(range)` for each of the `parts` contiguous ranges that `partRange` cuts `0..<count` into,
/// concurrently (see `parallelFor(parts:_:)`), and waits.
public func parallelChunks(count: Int, parts: Int, _ body: (_ range: Range<Int>) -> Void) {
    parallelFor(parts: parts) { part in body(partRange(part, of: parts, total: count)) }
}

/// Runs `body(i)` for every `i` in `0..<count`, in `chunkCount(for: count, minimumChunk:)` contiguous chunks run
/// concurrently (so that tiny bodies stay cheap), and waits.
public func parallelForEach(count: Int, minimumChunk: Int = 1, _ body: (_ index: Int) -> Void) {
    parallelChunks(count: count, parts: chunkCount(for: count, minimumChunk: minimumChunk)) { range in
        for i in range { body(i) }
    }
}

/// Runs `body(block, range)` over `0..<count` cut into blocks of `blockSize` items (the last one may be
/// shorter): block `b` covers `b * blockSize ..< min(count, (b + 1) * blockSize)`. Concurrent, and waits.
public func parallelBlocks(count: Int, blockSize: Int, _ body: (_ block: Int, _ range: Range<Int>) -> Void) {
    precondition(blockSize > 0, "parallelBlocks: blockSize must be positive")
    let blocks = (count + blockSize - 1) / blockSize
    parallelFor(parts: blocks) { b in body(b, (b * blockSize)..<min(count, (b + 1) * blockSize)) }
}
