import Foundation
import IFCNTestSupport
import XCTest

/// Real multi-process tests: launch the built `ifcn` binary under `mpirun`.
final class MPIRunTests: XCTestCase {
    private func mpirun() throws -> URL {
        guard let mpirun = TestPaths.tool("mpirun") else { throw XCTSkip("mpirun is not installed") }
        return mpirun
    }

    private func runJob(ranks: Int, _ arguments: [String], timeout: Int = 120) throws -> ProcessResult {
        let ifcn = try TestPaths.ifcnBinary()
        return try ProcessRunner.run(try mpirun(),
                                     ["-np", "\(ranks)", "--oversubscribe", "--bind-to", "none", ifcn.path] + arguments,
                                     timeout: timeout)
    }

    private func rankLines(_ output: String) -> [String] {
        output.split(separator: "\n").map(String.init).filter { $0.hasPrefix("rank ") }
    }

    func testTwoRanksPassMPICheck() throws {
        let result = try runJob(ranks: 2, ["mpi-check"])
        XCTAssertEqual(result.status, 0, result.summary)
        XCTAssertTrue(result.stdout.contains("mpi-check ok ranks=2"), result.summary)
        let lines = rankLines(result.stdout)
        XCTAssertEqual(lines.count, 2, result.summary)
        for rank in 0..<2 {
            XCTAssertTrue(lines.contains { $0.hasPrefix("rank \(rank)/2 local \(rank) ") && $0.hasSuffix(" ok") },
                          "missing ok line for rank \(rank): \(result.summary)")
        }
    }

    func testThreeRanksWithTinyChunksAndOddCount() throws {
        // 1001 elements in chunks of 5 exercises the chunking path of allreduce and broadcast.
        let result = try runJob(ranks: 3, ["mpi-check", "--count", "1001", "--chunk-elements", "5"])
        XCTAssertEqual(result.status, 0, result.summary)
        XCTAssertTrue(result.stdout.contains("mpi-check ok ranks=3"), result.summary)
        XCTAssertEqual(rankLines(result.stdout).count, 3, result.summary)
    }

    func testJSONOutputParses() throws {
        let result = try runJob(ranks: 2, ["mpi-check", "--json", "--count", "64"])
        XCTAssertEqual(result.status, 0, result.summary)
        let objects = try result.stdout.split(separator: "\n").map { line -> [String: Any] in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
            return try XCTUnwrap(object as? [String: Any], "not a JSON object: \(line)")
        }
        let ranks = objects.compactMap { $0["rank"] as? Int }.sorted()
        XCTAssertEqual(ranks, [0, 1], result.summary)
        XCTAssertTrue(objects.filter { $0["rank"] != nil }.allSatisfy { $0["status"] as? String == "ok" && $0["size"] as? Int == 2 })
        XCTAssertTrue(objects.contains { $0["mpiCheck"] as? String == "ok" && $0["ranks"] as? Int == 2 }, result.summary)
    }

    func testDyingRankEndsWholeJobQuickly() throws {
        let result = try runJob(ranks: 2, ["mpi-check", "--die-rank", "1"], timeout: 60)
        XCTAssertFalse(result.timedOut, "the job hung after rank 1 died: \(result.summary)")
        XCTAssertNotEqual(result.status, 0, result.summary)
        XCTAssertLessThan(result.seconds, 30, result.summary)
        XCTAssertFalse(result.stdout.contains("mpi-check ok"), result.summary)
        XCTAssertTrue(result.stderr.contains("rank 1 exits with status 3"), result.summary)
    }

    func testBinaryWithoutMPIRunIsASingleton() throws {
        let ifcn = try TestPaths.ifcnBinary()
        let result = try ProcessRunner.run(ifcn, ["mpi-check", "--count", "100"], timeout: 60)
        XCTAssertEqual(result.status, 0, result.summary)
        XCTAssertTrue(result.stdout.contains("rank 0/1 local 0 "), result.summary)
        XCTAssertTrue(result.stdout.contains("mpi-check ok ranks=1"), result.summary)
    }

    func testInvalidCountIsRejected() throws {
        let ifcn = try TestPaths.ifcnBinary()
        let result = try ProcessRunner.run(ifcn, ["mpi-check", "--count", "0"], timeout: 60)
        XCTAssertNotEqual(result.status, 0, result.summary)
        XCTAssertTrue(result.stderr.contains("--count must be at least 1"), result.summary)
    }
}
