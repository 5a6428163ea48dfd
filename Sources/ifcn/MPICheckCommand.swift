import ArgumentParser
import Foundation
import IFCNDistributed
import IFCNSupport

/// `ifcn mpi-check`: a smoke test of the MPI set-up (launcher, network, collectives).
struct MPICheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mpi-check",
        abstract: "Check the MPI set-up: ranks, allreduce, broadcast and barrier (run it under mpirun).")

    @Option(help: "Number of floats in the allreduce test vector.")
    var count: Int = 1_000_003

    @Flag(help: "Print one JSON object per rank and a JSON summary instead of text.")
    var json = false

    @Option(help: ArgumentHelp("Rank that exits with status 3 before the allreduce (tests failure handling).",
                               visibility: .hidden))
    var dieRank: Int?

    @Option(help: ArgumentHelp("Largest number of elements per MPI call (tests the chunking path).",
                               visibility: .hidden))
    var chunkElements: Int?

    func validate() throws {
        guard count >= 1 else { throw ValidationError("--count must be at least 1 (got \(count))") }
        if let chunkElements, chunkElements < 1 {
            throw ValidationError("--chunk-elements must be at least 1 (got \(chunkElements))")
        }
    }

    func run() throws {
        let comm = try Communicator.initialize()
        if let chunkElements { comm.maxElementsPerCall = chunkElements }

        if let dieRank, dieRank == comm.rank {
            StandardError.write("mpi-check: rank \(comm.rank) exits with status 3 (--die-rank)")
            Foundation.exit(3)
        }

        var failures: [String] = []
        failures += try checkAllreduce(comm)
        failures += try checkDoubleReductions(comm)
        failures += try checkBroadcast(comm)
        failures += try checkConsistency(comm)
        comm.barrier()

        // Every rank learns whether any rank failed, so all of them exit with the same status.
        let allOK = comm.allreduceMin(failures.isEmpty ? 1 : 0) == 1
        report(comm, failures: failures)
        comm.barrier()
        if comm.isRoot { report(summaryOK: allOK, ranks: comm.size) }
        comm.finalize()
        if !allOK { throw ExitCode(1) }
    }

    /// Rank r contributes v_r[i] = (i mod 97) + r + 1; the sum over ranks is size * ((i mod 97) + 1) + size(size-1)/2.
    /// All values are small integers, so the float sums are exact and compared for equality.
    private func checkAllreduce(_ comm: Communicator) throws -> [String] {
        let size = comm.size, rank = comm.rank
        var values = [Float](repeating: 0, count: count)
        for i in 0..<count { values[i] = Float(i % 97 + rank + 1) }
        try values.withUnsafeMutableBufferPointer { try comm.allreduceSum($0.baseAddress!, count: count) }
        var bad = 0, firstBad = -1
        for i in 0..<count {
            let expected = Float(size * (i % 97 + 1) + size * (size - 1) / 2)
            if values[i] != expected {
                bad += 1
                if firstBad < 0 { firstBad = i }
            }
        }
        var failures: [String] = []
        if bad > 0 {
            failures.append("allreduce: \(bad) of \(count) sums wrong, first at \(firstBad): "
                + "got \(values[firstBad]), expected \(size * (firstBad % 97 + 1) + size * (size - 1) / 2)")
        }

        var mean = [Float](repeating: Float(rank * 2), count: min(count, 4096))
        let meanCount = mean.count
        try mean.withUnsafeMutableBufferPointer { try comm.averageGradients($0.baseAddress!, count: meanCount) }
        let expectedMean = Float(size - 1)  // mean of 0, 2, ..., 2(size-1)
        if mean.contains(where: { $0 != expectedMean }) {
            failures.append("averageGradients: expected \(expectedMean) everywhere, got \(mean.first ?? .nan)")
        }
        return failures
    }

    private func checkDoubleReductions(_ comm: Communicator) throws -> [String] {
        let size = comm.size, rank = comm.rank
        var sums = [Double(rank), 1, Double(rank * rank)]
        comm.allreduceSum(&sums)
        let expected = [Double(size * (size - 1) / 2), Double(size), Double((size - 1) * size * (2 * size - 1) / 6)]
        var failures: [String] = []
        if sums != expected { failures.append("allreduce(double sum): got \(sums), expected \(expected)") }
        let maxRank = comm.allreduceMax(Double(rank)), minRank = comm.allreduceMin(Double(rank))
        if maxRank != Double(size - 1) || minRank != 0 {
            failures.append("allreduce(max/min): got \(maxRank)/\(minRank), expected \(size - 1)/0")
        }
        return failures
    }

    private func checkBroadcast(_ comm: Communicator) throws -> [String] {
        let root = comm.size - 1  // the last rank, so a non-zero root is exercised whenever size > 1
        let message = try comm.broadcast(comm.rank == root ? "hello from rank \(root) of \(comm.size)" : "", root: root)
        var failures: [String] = []
        if message != "hello from rank \(root) of \(comm.size)" {
            failures.append("broadcast(string): got \"\(message)\"")
        }
        var pattern = [UInt8](repeating: 0, count: count)
        if comm.rank == root {
            for i in 0..<count { pattern[i] = UInt8(truncatingIfNeeded: i &* 31 &+ 7) }
        }
        let bytes = pattern.count
        try pattern.withUnsafeMutableBytes { try comm.broadcast($0.baseAddress!, bytes: bytes, root: root) }
        if let bad = (0..<count).first(where: { pattern[$0] != UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }) {
            failures.append("broadcast(\(bytes) bytes): first wrong byte at \(bad)")
        }
        return failures
    }

    private func checkConsistency(_ comm: Communicator) throws -> [String] {
        let weights = (0..<count).map { Float(sin(Double($0))) }
        var failures: [String] = []
        let same = try weights.withUnsafeBufferPointer { try comm.checkIdentical($0.baseAddress!, count: count) }
        if !same { failures.append("checkIdentical: identical weights reported as different") }
        if comm.size > 1 {
            var perturbed = weights
            if comm.rank == comm.size - 1 { perturbed[count / 2] = perturbed[count / 2].nextUp }
            let detected = try perturbed.withUnsafeBufferPointer { try comm.checkIdentical($0.baseAddress!, count: count) }
            if detected { failures.append("checkIdentical: a one-ulp difference on rank \(comm.size - 1) went unnoticed") }
        }
        return failures
    }

    private func report(_ comm: Communicator, failures: [String]) {
        let status = failures.isEmpty ? "ok" : "FAILED"
        let line: String
        if json {
            let object: [String: Any] = [
                "rank": comm.rank, "size": comm.size, "localRank": comm.localRank, "host": comm.processorName,
                "count": count, "status": status, "failures": failures,
            ]
            line = jsonLine(object)
        } else {
            line = "rank \(comm.rank)/\(comm.size) local \(comm.localRank) host \(comm.processorName) "
                + "allreduce/broadcast/barrier \(status)"
                + (failures.isEmpty ? "" : ": " + failures.joined(separator: "; "))
        }
        print(line)
        fflush(nil)  // flush stdout so mpirun forwards lines promptly
    }

    private func report(summaryOK: Bool, ranks: Int) {
        if json {
            print(jsonLine(["mpiCheck": summaryOK ? "ok" : "failed", "ranks": ranks]))
        } else {
            print(summaryOK ? "mpi-check ok ranks=\(ranks)" : "mpi-check FAILED ranks=\(ranks)")
        }
        fflush(nil)  // flush stdout so mpirun forwards lines promptly
    }

    private func jsonLine(_ object: [String: Any]) -> String {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else {
            return "{}"
        }
        return String(decoding: data, as: UTF8.self)
    }
}
