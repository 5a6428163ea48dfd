import Foundation
import IFCNTestSupport
import XCTest

/// Runs a 2-rank job across two network namespaces with scripts/netns_two_hosts.sh, so the ranks
/// really talk TCP between different network stacks (as on two hosts).
final class NetnsTwoHostsTests: XCTestCase {
    /// Skips unless this process may create network namespaces (normally: root with CAP_SYS_ADMIN).
    private func requireNetworkNamespaces() throws -> URL {
        guard let ip = TestPaths.tool("ip") else { throw XCTSkip("iproute2 (`ip`) is not installed") }
        guard TestPaths.tool("mpirun") != nil else { throw XCTSkip("mpirun is not installed") }
        let probe = "ifcn-probe-\(getpid())"
        let added = try ProcessRunner.run(ip, ["netns", "add", probe], timeout: 20)
        guard added.status == 0 else {
            throw XCTSkip("`ip netns add` is not permitted here: \(added.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        let deleted = try ProcessRunner.run(ip, ["netns", "del", probe], timeout: 20)
        XCTAssertEqual(deleted.status, 0, deleted.summary)
        return ip
    }

    func testMPICheckAcrossTwoNamespaces() throws {
        let ip = try requireNetworkNamespaces()
        let ifcn = try TestPaths.ifcnBinary()
        let script = TestPaths.repositoryRoot.appendingPathComponent("scripts/netns_two_hosts.sh")
        let tag = "t\(getpid() % 100_000)"
        let result = try ProcessRunner.run(script, [ifcn.path, "mpi-check", "--count", "200003"], timeout: 120,
                                           environment: ProcessRunner.cleanEnvironment(["IFCN_NETNS_TAG": tag]))
        XCTAssertEqual(result.status, 0, result.summary)
        XCTAssertTrue(result.stdout.contains("mpi-check ok ranks=2"), result.summary)
        // Each namespace is its own node, so both ranks are local rank 0.
        XCTAssertTrue(result.stdout.contains("rank 0/2 local 0 "), result.summary)
        XCTAssertTrue(result.stdout.contains("rank 1/2 local 0 "), result.summary)

        let remaining = try ProcessRunner.run(ip, ["netns", "list"], timeout: 20)
        XCTAssertFalse(remaining.stdout.contains("ifcn-h1-\(tag)"), "namespaces were not cleaned up: \(remaining.stdout)")
        XCTAssertFalse(remaining.stdout.contains("ifcn-h2-\(tag)"), "namespaces were not cleaned up: \(remaining.stdout)")
    }

    func testRanksReallyRunInSeparateNamespaces() throws {
        _ = try requireNetworkNamespaces()
        let script = TestPaths.repositoryRoot.appendingPathComponent("scripts/netns_two_hosts.sh")
        let command = "echo rank=$OMPI_COMM_WORLD_RANK addresses=$(ip -br -4 addr show | awk '{print $3}' | tr '\\n' ,)"
        let result = try ProcessRunner.run(script, ["sh", "-c", command], timeout: 120)
        XCTAssertEqual(result.status, 0, result.summary)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains { $0.hasPrefix("rank=0 ") && $0.contains("10.213.0.1/24") && !$0.contains("10.213.0.2") },
                      result.summary)
        XCTAssertTrue(lines.contains { $0.hasPrefix("rank=1 ") && $0.contains("10.213.0.2/24") && !$0.contains("10.213.0.1") },
                      result.summary)
    }

    func testScriptPrintsUsageWithoutArguments() throws {
        let script = TestPaths.repositoryRoot.appendingPathComponent("scripts/netns_two_hosts.sh")
        let result = try ProcessRunner.run(script, [], timeout: 20)
        XCTAssertEqual(result.status, 2, result.summary)
        XCTAssertTrue(result.stderr.contains("usage:"), result.summary)
    }
}
