import Foundation
@testable import IFCNSupport
import XCTest

/// The persistent pool behind `parallelFor`: every part runs exactly once whatever the part count, nested and
/// concurrent callers fall back instead of deadlocking, and results that depend on the split are the same bits
/// on every run.
final class WorkerPoolTests: XCTestCase {
    /// A pool of its own with more workers than this machine may have cores, so parts really are shared.
    private let pool = WorkerPool(workers: 3)

    private func hits(_ parts: Int, through run: (Int, (Int) -> Void) -> Void) -> [Int] {
        var hits = [Int](repeating: 0, count: parts)
        hits.withUnsafeMutableBufferPointer { h in run(parts) { h[$0] += 1 } }
        return hits
    }

    func testEveryPartRunsOnceForAnyPartCount() {
        for parts in [2, 3, 4, 5, 17, 64, 1000, 100_000] {
            var ran = false
            let h = hits(parts) { n, body in ran = pool.run(parts: n, body) }
            XCTAssertTrue(ran, "the idle pool takes a job of \(parts) parts")
            XCTAssertEqual(h, [Int](repeating: 1, count: parts), "\(parts) parts")
        }
    }

    func testThousandsOfShortJobsInARow() {
        // Back-to-back jobs are where a late worker could run a part of the wrong job or a part twice.
        var total = 0
        var sums = [Int](repeating: 0, count: 7)
        for job in 0..<20_000 {
            let parts = 2 + job % 6
            sums.withUnsafeMutableBufferPointer { s in
                XCTAssertTrue(pool.run(parts: parts) { s[$0] += $0 + 1 })
            }
            total += parts * (parts + 1) / 2
        }
        XCTAssertEqual(sums.reduce(0, +), total)
    }

    func testZeroAndOnePartThroughParallelFor() {
        var calls = 0
        parallelFor(parts: 0) { _ in calls += 1 }
        XCTAssertEqual(calls, 0)
        parallelFor(parts: 1) { part in XCTAssertEqual(part, 0); calls += 1 }
        XCTAssertEqual(calls, 1)
    }

    func testNestedJobsFallBackAndStillRunEveryPart() {
        let outer = 6, inner = 50
        var grid = [Int](repeating: 0, count: outer * inner)
        var nestedTaken = [Bool](repeating: true, count: outer)
        grid.withUnsafeMutableBufferPointer { g in
            nestedTaken.withUnsafeMutableBufferPointer { taken in
                XCTAssertTrue(pool.run(parts: outer) { o in
                    // The pool is busy with the outer job: it refuses the inner one, as parallelFor expects.
                    taken[o] = pool.run(parts: inner) { _ in }
                    parallelFor(parts: inner) { i in g[o * inner + i] += 1 }
                })
            }
        }
        XCTAssertEqual(grid, [Int](repeating: 1, count: outer * inner))
        XCTAssertEqual(nestedTaken, [Bool](repeating: false, count: outer))
        // parallelFor's own pool, nested the same way.
        grid = [Int](repeating: 0, count: outer * inner)
        grid.withUnsafeMutableBufferPointer { g in
            parallelFor(parts: outer) { o in parallelFor(parts: inner) { i in g[o * inner + i] += 1 } }
        }
        XCTAssertEqual(grid, [Int](repeating: 1, count: outer * inner))
    }

    func testConcurrentCallersFromSeveralThreads() {
        let callers = 4, rounds = 300, parts = 9
        var counts = [Int](repeating: 0, count: callers * parts)
        counts.withUnsafeMutableBufferPointer { c in
            let base = c.baseAddress!
            DispatchQueue.concurrentPerform(iterations: callers) { caller in
                for _ in 0..<rounds {
                    parallelFor(parts: parts) { p in base[caller * parts + p] += 1 }
                }
            }
        }
        XCTAssertEqual(counts, [Int](repeating: rounds, count: callers * parts))
    }

    func testMorePartsThanTheClaimWordHoldsFallBack() {
        let parts = WorkerPool.maximumParts + 3
        XCTAssertFalse(pool.run(parts: parts) { _ in })
        XCTAssertEqual(hits(parts) { n, body in parallelFor(parts: n, body) }, [Int](repeating: 1, count: parts))
    }

    func testSplitDependentSumsAreTheSameBitsEveryRun() {
        // Per-part float sums added in part order: the static split makes them reproducible, whichever thread
        // ran which part.
        let n = 100_003, parts = 37
        let values = (0..<n).map { Float(sin(Double($0) * 0.37)) * 1e3 }
        func sum() -> Float {
            var partial = [Float](repeating: 0, count: parts)
            partial.withUnsafeMutableBufferPointer { p in
                values.withUnsafeBufferPointer { v in
                    parallelFor(parts: parts) { k in
                        var s: Float = 0
                        for i in partRange(k, of: parts, total: n) { s += v[i] }
                        p[k] = s
                    }
                }
            }
            return partial.reduce(0, +)
        }
        let first = sum()
        for _ in 0..<200 { XCTAssertEqual(sum().bitPattern, first.bitPattern) }
    }
}
