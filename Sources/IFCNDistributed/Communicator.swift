import CMPIShim
import Foundation
import IFCNSupport

/// The processes of one MPI job (MPI_COMM_WORLD).
///
/// MPI is initialised with MPI_THREAD_FUNNELED: make every call on the thread that called
/// `initialize()` (normally the main thread). Multi-threaded compute between MPI calls is fine.
/// Started without mpirun the process is a singleton job: rank 0 of size 1.
///
/// Collectives (allreduce, broadcast, barrier, `checkIdentical`) must be called by every rank in
/// the same order with the same counts. The non-throwing collectives abort the whole job with a
/// message if MPI reports an error, because a half-completed collective cannot be recovered and
/// other ranks would otherwise wait forever.
public final class Communicator: @unchecked Sendable {
    /// Rank of this process, 0..<size.
    public let rank: Int
    /// Number of processes in the job.
    public let size: Int
    /// Rank among the processes on this node (use it to pick a device or a CPU set).
    public let localRank: Int
    /// Number of processes on this node.
    public let localSize: Int
    /// Name of the node this process runs on (MPI_Get_processor_name).
    public let processorName: String

    /// True on rank 0, which by convention does logging, checkpointing and evaluation.
    public var isRoot: Bool { rank == 0 }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var shared: Communicator?

    private init(rank: Int, size: Int, localRank: Int, localSize: Int, processorName: String) {
        self.rank = rank
        self.size = size
        self.localRank = localRank
        self.localSize = localSize
        self.processorName = processorName
    }

    /// Initialises MPI (once) and returns the communicator for MPI_COMM_WORLD.
    /// Calling it again returns the same object. Throws if MPI cannot start or was already finalised.
    public static func initialize() throws -> Communicator {
        lock.lock()
        defer { lock.unlock() }
        if let existing = shared {
            if ifcn_mpi_is_finalized() != 0 {
                throw MPIError(operation: "initialize", code: IFCN_MPI_ERR_FINALIZED)
            }
            return existing
        }
        try MPIError.check(ifcn_mpi_init(), "initialize")
        var rank: Int32 = 0, size: Int32 = 0, localRank: Int32 = 0, localSize: Int32 = 0
        try MPIError.check(ifcn_mpi_rank(&rank), "rank")
        try MPIError.check(ifcn_mpi_size(&size), "size")
        try MPIError.check(ifcn_mpi_local_rank(&localRank), "local rank")
        try MPIError.check(ifcn_mpi_local_size(&localSize), "local size")
        var nameBuffer = [CChar](repeating: 0, count: 512)
        let capacity = Int32(nameBuffer.count)
        try MPIError.check(nameBuffer.withUnsafeMutableBufferPointer {
            ifcn_mpi_processor_name($0.baseAddress, capacity)
        }, "processor name")
        let nameBytes = nameBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        let communicator = Communicator(rank: Int(rank), size: Int(size), localRank: Int(localRank),
                                        localSize: Int(localSize),
                                        processorName: String(decoding: nameBytes, as: UTF8.self))
        shared = communicator
        return communicator
    }

    /// The communicator if `initialize()` has already succeeded (and MPI is not finalised), else nil.
    public static var current: Communicator? {
        lock.lock()
        defer { lock.unlock() }
        return ifcn_mpi_is_finalized() != 0 ? nil : shared
    }

    /// Largest number of elements (bytes for broadcasts) handed to one MPI call; bigger buffers are
    /// split into several calls. Defaults to Int32.max, the MPI limit. Lower it only for tests, and set
    /// the same value on every rank. Values below 1 restore the default.
    public var maxElementsPerCall: Int {
        get { Int(ifcn_mpi_max_chunk()) }
        set { ifcn_mpi_set_max_chunk(Int64(newValue)) }
    }

    /// How long a collective waits for the other ranks, in seconds; nil (the default) waits forever with
    /// MPI's blocking collectives, `.infinity` waits forever too but sleeps between polls. With a limit, a rank that waits sleeps between polls instead of spinning,
    /// and a collective past the limit ends the whole job (MPI_Abort) with a message naming the ranks that
    /// did not arrive (see `ifcn_mpi_set_timeout`). Set the same value on every rank, between collectives.
    public var collectiveTimeout: Double? {
        get { let t = ifcn_mpi_timeout(); return t > 0 ? t : nil }
        set { ifcn_mpi_set_timeout(newValue ?? 0) }
    }

    /// Runs `body` with `collectiveTimeout` set to `seconds` (`.infinity`: no limit, but still waiting
    /// without spinning), then restores it. Collective: every rank must call it around the same calls.
    public func withCollectiveTimeout<T>(_ seconds: Double?, _ body: () throws -> T) rethrows -> T {
        let saved = collectiveTimeout
        collectiveTimeout = seconds
        defer { collectiveTimeout = saved }
        return try body()
    }

    /// What the job is doing (e.g. "iteration 57"), named in timeout reports. Main thread only.
    public var activity = ""

    // MARK: - Collectives

    /// In-place sum of `count` floats over all ranks. Any count is allowed (large ones are chunked).
    public func allreduceSum(_ buf: UnsafeMutablePointer<Float>, count: Int) throws {
        try checked(ifcn_mpi_allreduce_sum_float(buf, Int64(count)), "allreduce(sum, float, count \(count))")
    }

    /// In-place sum of `values` over all ranks (every rank must pass the same count).
    public func allreduceSum(_ values: inout [Double]) {
        let count = values.count
        let code = values.withUnsafeMutableBufferPointer {
            ifcn_mpi_allreduce_double($0.baseAddress, Int64(count), IFCN_MPI_OP_SUM)
        }
        abortOnError(code, "allreduce(sum, double, count \(count))")
    }

    /// Maximum of `value` over all ranks.
    public func allreduceMax(_ value: Double) -> Double {
        reduceScalar(value, IFCN_MPI_OP_MAX, "allreduce(max, double)")
    }

    /// Minimum of `value` over all ranks.
    public func allreduceMin(_ value: Double) -> Double {
        reduceScalar(value, IFCN_MPI_OP_MIN, "allreduce(min, double)")
    }

    /// Element-wise maximum of `values` over all ranks, in place.
    public func allreduceMax(_ values: inout [Double]) {
        reduceVector(&values, IFCN_MPI_OP_MAX, "allreduce(max, double)")
    }

    /// Element-wise minimum of `values` over all ranks, in place.
    public func allreduceMin(_ values: inout [Double]) {
        reduceVector(&values, IFCN_MPI_OP_MIN, "allreduce(min, double)")
    }

    /// Copies `bytes` bytes at `buf` on rank `root` into `buf` on every other rank.
    public func broadcast(_ buf: UnsafeMutableRawPointer, bytes: Int, root: Int) throws {
        try checkRoot(root, "broadcast")
        try checked(ifcn_mpi_bcast_bytes(buf, Int64(bytes), Int32(root)), "broadcast(\(bytes) bytes from rank \(root))")
    }

    /// Blocks until every rank has called `barrier()`.
    public func barrier() {
        abortOnError(ifcn_mpi_barrier(), "barrier")
    }

    /// Prints `message` to stderr (prefixed with the rank) and aborts every rank of the job with `code`.
    public func abort(code: Int32, message: String) -> Never {
        StandardError.write("ifcn rank \(rank)/\(size): \(message)")
        _ = ifcn_mpi_abort(code)
        exit(code)  // only reached if MPI_Abort itself failed
    }

    /// Finalises MPI. Call once at the end of the program on every rank; afterwards no MPI call works.
    /// A failure is reported on stderr (there is nothing left to recover at that point).
    public func finalize() {
        Communicator.lock.lock()
        defer { Communicator.lock.unlock() }
        let code = ifcn_mpi_finalize()
        if code != IFCN_MPI_SUCCESS {
            let error = MPIError(operation: "finalize", code: code)
            StandardError.write("ifcn rank \(rank)/\(size): \(error)")
        }
    }

    // MARK: - Helpers

    func checkRoot(_ root: Int, _ operation: String) throws {
        guard (0..<size).contains(root) else {
            throw MPIError(operation: operation, message: "root rank \(root) is outside 0..<\(size)")
        }
    }

    private func reduceScalar(_ value: Double, _ op: ifcn_mpi_op, _ operation: String) -> Double {
        var result = value
        abortOnError(ifcn_mpi_allreduce_double(&result, 1, op), operation)
        return result
    }

    private func reduceVector(_ values: inout [Double], _ op: ifcn_mpi_op, _ operation: String) {
        let count = values.count
        let code = values.withUnsafeMutableBufferPointer {
            ifcn_mpi_allreduce_double($0.baseAddress, Int64(count), op)
        }
        abortOnError(code, "\(operation) count \(count)")
    }

    /// Throws an `MPIError` for a failed call; a timed-out collective ends the job instead (it is left
    /// half done on the ranks that answered, so nothing can continue).
    private func checked(_ code: Int32, _ operation: @autoclosure () -> String) throws {
        abortOnTimeout(code)
        try MPIError.check(code, operation())
    }

    private func abortOnTimeout(_ code: Int32) {
        guard code == IFCN_MPI_ERR_TIMEOUT || code == IFCN_MPI_ERR_ORDER else { return }
        let report = shimString(capacity: 2048) { ifcn_mpi_timeout_report($0, $1) }
        abort(code: 1, message: report + (activity.isEmpty ? "" : " (during \(activity))") + "; ending the job")
    }

    private func abortOnError(_ code: Int32, _ operation: @autoclosure () -> String) {
        abortOnTimeout(code)
        if code != IFCN_MPI_SUCCESS {
            abort(code: 1, message: MPIError(operation: operation(), code: code).description)
        }
    }
}
