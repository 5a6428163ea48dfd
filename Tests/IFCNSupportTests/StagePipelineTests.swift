import Foundation
@testable import IFCNSupport
import XCTest

/// `runStages`: the same values reported in item order with and without overlap, at most three items in flight,
/// processing on the calling thread, and background stages whose parallel loops run next to the caller's.
final class StagePipelineTests: XCTestCase {
    /// What happened, in order, from every thread.
    final class EventLog: @unchecked Sendable {
        private let lock = NSLock()
        private var events: [String] = []
        func add(_ event: String) { lock.lock(); events.append(event); lock.unlock() }
        var all: [String] { lock.lock(); defer { lock.unlock() }; return events }
        /// Position of `event` in the log (fails the test when it is missing).
        func index(_ event: String, file: StaticString = #filePath, line: UInt = #line) -> Int {
            guard let i = all.firstIndex(of: event) else { XCTFail("no \(event) in \(all)", file: file, line: line); return -1 }
            return i
        }
    }

    /// Runs `count` items through stages that log their start and end; returns the log and the reports.
    func run(count: Int, overlapped: Bool) -> (log: EventLog, reports: [String]) {
        let log = EventLog()
        var reports: [String] = []
        let caller = Thread.current
        runStages(count: count, overlapped: overlapped,
                  prepare: { i in
                      log.add("prepare \(i)"); defer { log.add("prepared \(i)") }
                      return "p\(i)"
                  },
                  process: { i, prepared in
                      XCTAssertTrue(Thread.current === caller, "process runs on the calling thread")
                      log.add("process \(i)"); defer { log.add("processed \(i)") }
                      return prepared + "-n\(i)"
                  },
                  finish: { i, processed in
                      log.add("finish \(i)"); defer { log.add("finished \(i)") }
                      return processed + "-w\(i)"
                  },
                  report: { i, finished in
                      XCTAssertTrue(Thread.current === caller, "report runs on the calling thread")
                      log.add("report \(i)")
                      reports.append("\(i):" + finished)
                  })
        return (log, reports)
    }

    func testSameReportsInItemOrderWithAndWithoutOverlap() {
        for count in [0, 1, 2, 3, 7] {
            let expected = (0..<count).map { "\($0):p\($0)-n\($0)-w\($0)" }
            XCTAssertEqual(run(count: count, overlapped: false).reports, expected, "\(count) items, one at a time")
            XCTAssertEqual(run(count: count, overlapped: true).reports, expected, "\(count) items overlapped")
        }
    }

    func testWithoutOverlapOneItemAtATime() {
        let log = run(count: 3, overlapped: false).log
        let expected = (0..<3).flatMap { i in
            ["prepare", "prepared", "process", "processed", "finish", "finished", "report"].map { "\($0) \(i)" }
        }
        XCTAssertEqual(log.all, expected)
    }

    /// Item j is prepared only once item j-2 has been processed, and finished only once item j-1 has been
    /// reported: at most one item ahead and one behind the one being processed.
    func testOverlapKeepsAtMostThreeItemsInFlight() {
        for _ in 0..<20 {
            let count = 6
            let log = run(count: count, overlapped: true).log
            for j in 0..<count {
                XCTAssertLessThan(log.index("prepared \(j)"), log.index("process \(j)"))
                XCTAssertLessThan(log.index("processed \(j)"), log.index("finish \(j)"))
                XCTAssertLessThan(log.index("finished \(j)"), log.index("report \(j)"))
                if j >= 2 { XCTAssertLessThan(log.index("processed \(j - 2)"), log.index("prepare \(j)")) }
                if j >= 1 {
                    XCTAssertLessThan(log.index("report \(j - 1)"), log.index("finish \(j)"))
                    XCTAssertLessThan(log.index("report \(j - 1)"), log.index("report \(j)"))
                    XCTAssertLessThan(log.index("processed \(j - 1)"), log.index("process \(j)"))
                }
            }
        }
    }

    /// The stages really overlap, and parallel loops in them do not wait for one another: item 0's processing
    /// holds a part of a parallel loop (so perhaps the shared pool) until item 1's preparation, which runs parallel
    /// loops of its own, has finished; item 1's processing waits in the same way for item 0's finishing. One at a
    /// time, or with a background loop that waited for the pool, neither wait would end.
    func testBackgroundLoopsRunWhileTheCallersLoopWaits() {
        let preparedOne = DispatchSemaphore(value: 0), finishedZero = DispatchSemaphore(value: 0)
        var waits: [DispatchTimeoutResult] = []
        /// Sum of 0..<n through parallelForEach (each index written by exactly one part).
        func parallelSum(_ n: Int) -> Int {
            var values = [Int](repeating: 0, count: n)
            values.withUnsafeMutableBufferPointer { v in parallelForEach(count: n) { v[$0] = $0 } }
            return values.reduce(0, +)
        }
        var sums: [Int] = []
        runStages(count: 3, overlapped: true,
                  prepare: { i in
                      let s = parallelSum(10_000 + i)
                      if i == 1 { preparedOne.signal() }
                      return s
                  },
                  process: { i, prepared in
                      var result = 0
                      var waited = [DispatchTimeoutResult](repeating: .success, count: 4)
                      waited.withUnsafeMutableBufferPointer { w in
                          parallelFor(parts: 4) { part in
                              guard part == 0 else { return }
                              if i == 0 { w[0] = preparedOne.wait(timeout: .now() + 60) }
                              if i == 1 { w[0] = finishedZero.wait(timeout: .now() + 60) }
                          }
                      }
                      waits.append(waited[0])
                      result = prepared + parallelSum(100)
                      return result
                  },
                  finish: { i, processed in
                      let s = processed + parallelSum(1000)
                      if i == 0 { finishedZero.signal() }
                      return s
                  },
                  report: { _, finished in sums.append(finished) })
        XCTAssertEqual(waits, [.success, .success, .success])
        let expected = (0..<3).map { i in (10_000 + i) * (9_999 + i) / 2 + 4950 + 499_500 }
        XCTAssertEqual(sums, expected)
    }
}
