import Foundation
import IFCNSupport
import XCTest

final class ParallelTests: XCTestCase {
    func testPartRangesTileTheTotalInOrder() {
        for total in [0, 1, 7, 64, 1000] {
            for parts in 1...9 {
                let ranges = (0..<parts).map { partRange($0, of: parts, total: total) }
                XCTAssertEqual(ranges.first?.lowerBound, 0)
                XCTAssertEqual(ranges.last?.upperBound, total)
                for (a, b) in zip(ranges, ranges.dropFirst()) { XCTAssertEqual(a.upperBound, b.lowerBound) }
                XCTAssertLessThanOrEqual(ranges.map(\.count).max()! - ranges.map(\.count).min()!, 1)
            }
        }
    }

    func testEveryHelperVisitsEachIndexOnce() {
        for count in [0, 1, 5, 1000, 70_000] {
            var hits = [Int](repeating: 0, count: count)
            hits.withUnsafeMutableBufferPointer { h in parallelForEach(count: count) { h[$0] += 1 } }
            XCTAssertTrue(hits.allSatisfy { $0 == 1 }, "parallelForEach \(count)")

            hits = [Int](repeating: 0, count: count)
            hits.withUnsafeMutableBufferPointer { h in
                parallelChunks(count: count, parts: min(count, 3)) { r in for i in r { h[i] += 1 } }
            }
            XCTAssertTrue(hits.allSatisfy { $0 == 1 }, "parallelChunks \(count)")

            hits = [Int](repeating: 0, count: count)
            var blocks = [Int](repeating: -1, count: (count + 99) / 100)
            hits.withUnsafeMutableBufferPointer { h in
                blocks.withUnsafeMutableBufferPointer { b in
                    parallelBlocks(count: count, blockSize: 100) { block, r in
                        b[block] = r.lowerBound
                        for i in r { h[i] += 1 }
                    }
                }
            }
            XCTAssertTrue(hits.allSatisfy { $0 == 1 }, "parallelBlocks \(count)")
            XCTAssertEqual(blocks, Array(stride(from: 0, to: count, by: 100)))
        }
    }

    func testParallelForRunsEachPartOnceAndNothingForNoParts() {
        var seen = [Int](repeating: 0, count: 16)
        seen.withUnsafeMutableBufferPointer { s in parallelFor(parts: 16) { s[$0] += 1 } }
        XCTAssertEqual(seen, [Int](repeating: 1, count: 16))
        var calls = 0
        parallelFor(parts: 0) { _ in calls += 1 }
        parallelFor(parts: -3) { _ in calls += 1 }
        XCTAssertEqual(calls, 0)
    }

    func testChunkCount() {
        XCTAssertEqual(chunkCount(for: 0), 0)
        XCTAssertEqual(chunkCount(for: 1), 1)
        XCTAssertEqual(chunkCount(for: 1_000_000), 4 * activeCoreCount)
        XCTAssertEqual(chunkCount(for: 10, minimumChunk: 100), 1)
    }
}

final class SplitMix64Tests: XCTestCase {
    /// The reference splitmix64 outputs for seed 0 (Vigna's splitmix64.c).
    func testKnownSequence() {
        var g = SplitMix64(seed: 0)
        XCTAssertEqual([g.next(), g.next(), g.next()], [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F])
        var h = SplitMix64(seed: 1_234_567)
        XCTAssertEqual([h.next(), h.next()], [0x599E_D017_FB08_FC85, 0x2C73_F084_5854_0FA5])
        XCTAssertEqual(mix64(0), 0)
        XCTAssertEqual(mix64(1), 0x5692_161D_100B_05E5)
    }

    func testUniformIsInTheUnitInterval() {
        var g = SplitMix64(seed: 42)
        for _ in 0..<1000 {
            let u = g.uniform()
            XCTAssertTrue(u >= 0 && u < 1)
            XCTAssertTrue(g.gaussian().isFinite)
        }
    }
}

final class AtomicFileTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "ifcn-support-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func testWriteReplacesAndLeavesNoTemporaryFile() throws {
        let path = dir + "/a.json"
        try AtomicFile.write(Data("one".utf8), to: path)
        try AtomicFile.write(Data("two".utf8), to: path)
        XCTAssertEqual(FileManager.default.contents(atPath: path), Data("two".utf8))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["a.json"])
    }

    func testWriteThroughATemporaryPathKeepsTheExtension() throws {
        let path = dir + "/v.nii.gz"
        try AtomicFile.write(to: path, keepingExtension: ".nii.gz") { temp in
            XCTAssertTrue(temp.hasSuffix(".nii.gz") && temp != path)
            try Data("x".utf8).write(to: URL(fileURLWithPath: temp))
        }
        XCTAssertEqual(FileManager.default.contents(atPath: path), Data("x".utf8))
        struct Refused: Error {}
        XCTAssertThrowsError(try AtomicFile.write(to: dir + "/w.nii") { temp in
            try Data("y".utf8).write(to: URL(fileURLWithPath: temp))
            throw Refused()
        }) { XCTAssertTrue($0 is Refused) }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["v.nii.gz"])
    }

    func testFailureNamesTheFileAndTheReason() {
        let path = dir + "/missing/a.json"
        XCTAssertThrowsError(try AtomicFile.write(Data(), to: path)) { error in
            guard let e = error as? FileError else { return XCTFail("\(error)") }
            XCTAssertEqual(e.path, path)
            XCTAssertTrue(e.description.hasPrefix(path + ": cannot write: No such file or directory"), e.description)
        }
        XCTAssertThrowsError(try AtomicFile.moveIntoPlace(dir + "/nothing", to: dir + "/b")) { error in
            XCTAssertTrue("\(error)".contains("cannot move the finished file into place"), "\(error)")
        }
    }
}

final class BoundsTests: XCTestCase {
    func testQuotedEscapesControlCharactersAndCuts() {
        XCTAssertEqual(quoted("MET_FLOAT"), "'MET_FLOAT'")
        XCTAssertEqual(quoted("a\u{1B}[31mb\n\t'\\é"), "'a\\u{1B}[31mb\\n\\t\\'\\\\\\u{E9}'")
        XCTAssertEqual(quoted(String(repeating: "x", count: 100), limit: 5), "'xxxxx'...")
        XCTAssertEqual(quoted(""), "''")
    }

    func testThreadCountRange() {
        let most = ThreadCount.perCore * activeCoreCount
        XCTAssertNil(ThreadCount.problem(1))
        XCTAssertNil(ThreadCount.problem(most))
        for bad in [0, -1, most + 1, Int.max, Int.min] {
            let problem = ThreadCount.problem(bad, option: "IFCN_THREADS")
            XCTAssertEqual(problem?.hasPrefix("IFCN_THREADS must be between 1 and \(most) ("), true, problem ?? "nil")
            XCTAssertEqual(problem?.hasSuffix("got \(bad)"), true, problem ?? "nil")
        }
    }

    func testMemoryLimitMessages() {
        XCTAssertEqual(MemoryLimit.describe(bytes: 1.08e11), "108 GB")
        XCTAssertEqual(MemoryLimit.describe(bytes: 2.1e6), "2.1 MB")
        XCTAssertEqual(MemoryLimit.describe(bytes: 512), "512 bytes")
        XCTAssertEqual(MemoryLimit.describe(count: 2.7e10), "2.7e+10")
        XCTAssertThrowsError(try MemoryLimit.check(.infinity, "x"))
        XCTAssertThrowsError(try MemoryLimit.check(.nan, "x"))
        XCTAssertThrowsError(try MemoryLimit.check(1e30, "a thing")) { error in
            XCTAssertTrue("\(error)".hasPrefix("a thing (1000000000000 EB), more than the limit of "), "\(error)")
        }
        XCTAssertNoThrow(try MemoryLimit.check(1000, "x"))
    }
}
