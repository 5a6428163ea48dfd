import CMPIShim
import Foundation
import XCTest
@testable import IFCNDistributed

/// In-process tests: the test runner is not started by mpirun, so MPI runs as a singleton (one rank).
final class SingletonCommunicatorTests: XCTestCase {
    private var comm: Communicator!

    override func setUpWithError() throws {
        comm = try Communicator.initialize()
    }

    func testSingletonIsRankZeroOfOne() throws {
        XCTAssertEqual(comm.rank, 0)
        XCTAssertEqual(comm.size, 1)
        XCTAssertEqual(comm.localRank, 0)
        XCTAssertEqual(comm.localSize, 1)
        XCTAssertTrue(comm.isRoot)
        XCTAssertFalse(comm.processorName.isEmpty)
        XCTAssertEqual(ifcn_mpi_is_initialized(), 1)
    }

    func testInitializeIsIdempotent() throws {
        let again = try Communicator.initialize()
        XCTAssertTrue(again === comm)
        XCTAssertTrue(Communicator.current === comm)
    }

    func testFloatAllreduceIsIdentityOnOneRank() throws {
        var values: [Float] = (0..<1000).map { Float($0) * 0.25 - 7 }
        let expected = values
        try values.withUnsafeMutableBufferPointer { try comm.allreduceSum($0.baseAddress!, count: $0.count) }
        XCTAssertEqual(values, expected)
    }

    func testChunkedAllreduceAndBroadcastCoverEveryElement() throws {
        let saved = comm.maxElementsPerCall
        defer { comm.maxElementsPerCall = saved }
        comm.maxElementsPerCall = 7
        XCTAssertEqual(comm.maxElementsPerCall, 7)
        var values: [Float] = (0..<100).map { Float($0) + 0.5 }  // 100 = 14 chunks of 7 + 2
        let expected = values
        try values.withUnsafeMutableBufferPointer { try comm.allreduceSum($0.baseAddress!, count: $0.count) }
        XCTAssertEqual(values, expected)
        var doubles = (0..<50).map(Double.init)
        comm.allreduceSum(&doubles)
        XCTAssertEqual(doubles, (0..<50).map(Double.init))
        var bytes = [UInt8](0..<255)
        try comm.broadcast(&bytes, root: 0)
        XCTAssertEqual(bytes, [UInt8](0..<255))
        comm.maxElementsPerCall = 0
        XCTAssertEqual(comm.maxElementsPerCall, Int(Int32.max))
    }

    func testDoubleReductionsOnOneRank() {
        var sums = [1.5, -2, 1e300]
        comm.allreduceSum(&sums)
        XCTAssertEqual(sums, [1.5, -2, 1e300])
        XCTAssertEqual(comm.allreduceMax(3.25), 3.25)
        XCTAssertEqual(comm.allreduceMin(-8), -8)
        var empty: [Double] = []
        comm.allreduceSum(&empty)
        XCTAssertTrue(empty.isEmpty)
        comm.barrier()
    }

    func testBroadcastHelpersReturnRootValue() throws {
        XCTAssertEqual(try comm.broadcast("vertebra ✓", root: 0), "vertebra ✓")
        XCTAssertEqual(try comm.broadcast(Data([1, 2, 3]), root: 0), Data([1, 2, 3]))
        XCTAssertEqual(try comm.broadcast(Data(), root: 0), Data())
        var floats: [Float] = [1, 2, 3]
        try comm.broadcast(&floats, root: 0)
        XCTAssertEqual(floats, [1, 2, 3])
        var scalar = 42.5
        try comm.broadcast(&scalar, root: 0)
        XCTAssertEqual(scalar, 42.5)
        var raw: [UInt32] = [0xDEAD_BEEF, 7]
        try raw.withUnsafeMutableBytes { try comm.broadcast($0.baseAddress!, bytes: $0.count, root: 0) }
        XCTAssertEqual(raw, [0xDEAD_BEEF, 7])
    }

    func testBroadcastFromMissingRankThrowsDescriptiveError() {
        var value: Int32 = 1
        XCTAssertThrowsError(try comm.broadcast(&value, root: 1)) { error in
            let description = String(describing: error)
            XCTAssertTrue(error is MPIError)
            XCTAssertTrue(description.contains("root rank 1"), description)
        }
        XCTAssertThrowsError(try withUnsafeMutableBytes(of: &value) {
            try comm.broadcast($0.baseAddress!, bytes: 4, root: -1)
        })
    }

    func testShimRejectsInvalidArguments() {
        XCTAssertEqual(ifcn_mpi_allreduce_sum_float(nil, 5), IFCN_MPI_ERR_ARGUMENT)
        var x: Float = 1
        XCTAssertEqual(ifcn_mpi_allreduce_sum_float(&x, -1), IFCN_MPI_ERR_ARGUMENT)
        var d = 1.0
        XCTAssertEqual(ifcn_mpi_allreduce_double(&d, 1, ifcn_mpi_op(rawValue: 99)), IFCN_MPI_ERR_ARGUMENT)
        XCTAssertThrowsError(try comm.allreduceSum(&x, count: -3)) { error in
            guard let mpiError = error as? MPIError else { return XCTFail("expected MPIError, got \(error)") }
            XCTAssertEqual(mpiError.code, IFCN_MPI_ERR_ARGUMENT)
            XCTAssertTrue(mpiError.description.contains("count -3"), mpiError.description)
            XCTAssertTrue(mpiError.message.contains("invalid argument"), mpiError.message)
        }
    }

    func testMPIErrorMessagesComeFromMPI() {
        // MPI_ERR_COUNT is 2 in Open MPI; MPI_Error_string names the problem.
        let message = MPIError.message(for: 2)
        XCTAssertTrue(message.lowercased().contains("count"), message)
        XCTAssertTrue(MPIError.message(for: IFCN_MPI_ERR_NOT_INITIALIZED).contains("not initialized"))
    }

    func testAverageGradientsOnOneRankKeepsValues() throws {
        var gradients: [Float] = (0..<70_000).map { Float($0 % 13) - 6 }
        let expected = gradients
        try gradients.withUnsafeMutableBufferPointer { try comm.averageGradients($0.baseAddress!, count: $0.count) }
        XCTAssertEqual(gradients, expected)
    }

    func testCheckIdenticalOnOneRank() throws {
        let weights: [Float] = (0..<200_000).map { Float(sin(Double($0))) }
        XCTAssertTrue(try weights.withUnsafeBufferPointer { try comm.checkIdentical($0.baseAddress!, count: $0.count) })
        var nanWeights = weights
        nanWeights[5] = .nan
        XCTAssertTrue(try nanWeights.withUnsafeBufferPointer { try comm.checkIdentical($0.baseAddress!, count: $0.count) })
    }

    func testFingerprintSeesSingleBitFlipsAndSwaps() {
        let weights: [Float] = (0..<150_000).map { Float(cos(Double($0) * 0.37)) }
        let base = weights.withUnsafeBufferPointer { WeightFingerprint.hashes($0.baseAddress!, count: $0.count) }
        let again = weights.withUnsafeBufferPointer { WeightFingerprint.hashes($0.baseAddress!, count: $0.count) }
        XCTAssertTrue(base == again)

        var flipped = weights
        flipped[123_456] = Float(bitPattern: flipped[123_456].bitPattern ^ 1)
        let flippedHash = flipped.withUnsafeBufferPointer { WeightFingerprint.hashes($0.baseAddress!, count: $0.count) }
        XCTAssertNotEqual(flippedHash.0, base.0)
        XCTAssertNotEqual(flippedHash.1, base.1)

        var swapped = weights
        swapped.swapAt(10, 70_000)
        let swappedHash = swapped.withUnsafeBufferPointer { WeightFingerprint.hashes($0.baseAddress!, count: $0.count) }
        XCTAssertNotEqual(swappedHash.0, base.0)
        XCTAssertNotEqual(swappedHash.1, base.1)

        var signFlip = weights
        signFlip[0] = -signFlip[0]
        let signHash = signFlip.withUnsafeBufferPointer { WeightFingerprint.hashes($0.baseAddress!, count: $0.count) }
        XCTAssertNotEqual(signHash.0, base.0)
    }
}
