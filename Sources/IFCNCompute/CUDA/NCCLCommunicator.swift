import CCUDA
import Foundation

/// Gradient averaging across GPUs with NCCL (libnccl.so.2, loaded at run time like the other NVIDIA
/// libraries): one communicator over all ranks, built from an id that rank 0 creates and the caller
/// passes to the others (ifcn broadcasts it over MPI). `average` queues ncclAllReduce with ncclAvg in
/// place on the backend's stream, so the gradients never cross to the host.
public final class NCCLCommunicator {
    public let backend: CUDABackend
    public let ranks: Int
    public let rank: Int
    private let comm: UnsafeMutableRawPointer

    /// Bytes of the id `uniqueID` makes.
    public static let uniqueIDBytes = Int(IFCN_NCCL_UNIQUE_ID_BYTES)

    /// Loads libnccl.so.2 (once per process; searched as the other NVIDIA libraries) and says where from, or why not.
    @discardableResult
    public static func load() -> CUDALibraryStatus { CUDALoader.load(.nccl) }

    /// The loaded library's version, e.g. "2.32.3".
    public static var version: String? {
        guard load().loaded else { return nil }
        var v: Int32 = 0
        guard ifcn_nccl_version(&v) == 0 else { return nil }
        return "\(v / 10000).\((v % 10000) / 100).\(v % 100)"
    }

    /// A new communicator id (rank 0 makes it once per job).
    public static func uniqueID() throws -> [UInt8] {
        try require()
        var id = [UInt8](repeating: 0, count: uniqueIDBytes)
        try check(id.withUnsafeMutableBufferPointer { ifcn_nccl_unique_id($0.baseAddress!) }, "ncclGetUniqueId")
        return id
    }

    /// Joins the communicator of `ranks` ranks as `rank`, on `backend`'s GPU. Collective: every rank calls it
    /// with the same id, and it returns when all have joined.
    public init(backend: CUDABackend, ranks: Int, rank: Int, id: [UInt8]) throws {
        try Self.require()
        precondition(id.count == Self.uniqueIDBytes, "an NCCL id has \(Self.uniqueIDBytes) bytes")
        self.backend = backend
        self.ranks = ranks
        self.rank = rank
        backend.bind()  // the current context names the GPU the communicator uses
        var c: UnsafeMutableRawPointer?
        try Self.check(id.withUnsafeBufferPointer { ifcn_nccl_comm_init(&c, Int32(ranks), $0.baseAddress!, Int32(rank)) },
                       "ncclCommInitRank(\(ranks) ranks, rank \(rank))")
        comm = c!
    }

    deinit {
        backend.bind()
        _ = ifcn_nccl_comm_destroy(comm)
    }

    /// Replaces `tensor` by its mean over the ranks, queued on the backend's stream (no host copy, no wait).
    /// A failure here (a peer or the network gone, the GPU lost) ends the job through `DeviceFailure`.
    public func average(_ tensor: TensorRef) {
        backend.bind()
        guard tensor.count > 0 else { return }
        backend.queuedWork += 1
        var code = ifcn_nccl_allreduce_average(comm, backend.pointer(tensor), tensor.count, backend.stream)
        var call = "ncclAllReduce(\(tensor.count) floats, average)"
        if code == 0 {
            var asyncError: Int32 = 0
            if ifcn_nccl_async_error(comm, &asyncError) == 0, asyncError != 0 { (code, call) = (asyncError, "NCCL (asynchronous error)") }
        }
        if code != 0 {
            DeviceFailure.stop(device: backend.deviceDescription, call: call,
                               reason: "\(String(cString: ifcn_nccl_error_string(code))) (ncclResult \(code))")
        }
    }

    private static func require() throws {
        let status = load()
        guard status.loaded else { throw CUDAError("NCCL is not loaded: \(status.problem ?? "libnccl.so.2 not found")") }
    }

    private static func check(_ code: Int32, _ call: @autoclosure () -> String) throws {
        guard code != 0 else { return }
        throw CUDAError("\(call()) failed: \(String(cString: ifcn_nccl_error_string(code))) (ncclResult \(code))")
    }
}
