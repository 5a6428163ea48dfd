import Foundation
import IFCNCompute
import IFCNDistributed
import IFCNEngine
import IFCNSupport

/// How `ifcn train` averages the gradients of the ranks (`--allreduce`).
public enum AllreduceMethod: String, CaseIterable, Sendable {
    /// NCCL when every rank runs on CUDA, libnccl.so.2 loads everywhere and no two ranks share a GPU; else MPI.
    case auto
    /// NCCL on each GPU's stream (no host copy); the run stops with the reason when it cannot be used.
    case nccl
    /// MPI, through pinned host memory on a GPU.
    case mpi
}

/// The averaging a run uses, chosen once at the start, the same on every rank.
enum GradientAveraging {
    case mpi
    case nccl(NCCLCommunicator)

    /// Replaces `gradients` by their mean over the ranks; returns the mean's sum of squares (the divergence check).
    func average(_ gradients: TensorRef, backend: any ComputeBackend, comm: Communicator) throws -> Double {
        switch self {
        case .mpi:
            // One rank has nothing to average: no host round trip of the gradients.
            if comm.size > 1 {
                try backend.withHostMemory(gradients) { try comm.averageGradients($0, count: gradients.count) }
            }
        case .nccl(let nccl):
            nccl.average(gradients)
        }
        return backend.sumOfSquares(gradients)
    }

    /// One line for the log.
    func describe(backend: any ComputeBackend, ranks: Int) -> String {
        switch self {
        case .mpi:
            if ranks == 1 { return "one rank: its gradients are used as they are (nothing to average)" }
            return "gradients averaged by MPI allreduce" + (backend is CUDABackend ? " through pinned host memory" : "")
        case .nccl(let nccl):
            return "gradients averaged by NCCL \(NCCLCommunicator.version ?? "?") on each GPU's stream (\(nccl.ranks) rank(s))"
        }
    }

    /// Chooses for `method` (collective: every rank calls it). `auto` falls back to MPI with the first obstacle
    /// in `note`; `nccl` throws it, on every rank. One rank averages nothing (`.mpi` then skips the host copy),
    /// so `auto` sets no NCCL up for it; an explicit `nccl` still does (the device check compares it with MPI).
    static func choose(_ method: AllreduceMethod, backend: any ComputeBackend, comm: Communicator,
                       note: (String) -> Void) throws -> GradientAveraging {
        guard method == .nccl || (method == .auto && comm.size > 1) else { return .mpi }
        let obstacle = ncclObstacle(backend: backend, comm: comm)
        let first = Int(comm.allreduceMin(obstacle == nil ? Double(comm.size) : Double(comm.rank)))
        if first < comm.size {
            let reason = "rank \(first): " + (try comm.broadcast(obstacle ?? "", root: first))
            if method == .nccl {
                throw TrainingError("--allreduce nccl cannot be used (\(reason)); use --allreduce mpi or auto", collective: true)
            }
            if comm.isRoot && backend is CUDABackend { note("NCCL not used (\(reason))") }
            return .mpi
        }
        guard let cuda = backend as? CUDABackend else { return .mpi }  // not reached: no obstacle means CUDA everywhere
        var id = [UInt8](repeating: 0, count: NCCLCommunicator.uniqueIDBytes)
        var made = 1.0
        if comm.isRoot {
            do { id = try NCCLCommunicator.uniqueID() } catch { made = 0; note("NCCL: \(error)") }
        }
        try comm.broadcast(&made, root: 0)
        guard made == 1 else {
            if method == .nccl { throw TrainingError("--allreduce nccl: rank 0 could not create the NCCL id", collective: true) }
            return .mpi
        }
        try comm.broadcast(&id, root: 0)
        do {
            // A rank that cannot join leaves the others inside NCCL's collective set-up: end the job (not collective).
            return .nccl(try NCCLCommunicator(backend: cuda, ranks: comm.size, rank: comm.rank, id: id))
        } catch {
            throw TrainingError("rank \(comm.rank) on \(comm.processorName): \(error)", collective: false)
        }
    }

    /// Why this rank cannot average through NCCL (nil when it can). Collective: it also finds ranks that share a
    /// GPU (one GPU per rank is what NCCL supports), by their host and PCI address.
    static func ncclObstacle(backend: any ComputeBackend, comm: Communicator) -> String? {
        let cuda = backend as? CUDABackend
        var keys = [Double](repeating: 0, count: comm.size)
        if let cuda { keys[comm.rank] = gpuKey(host: comm.processorName, pci: cuda.device.pciAddress) }
        comm.allreduceSum(&keys)
        guard let cuda else { return "the backend is \(backend.name), not CUDA" }
        let status = NCCLCommunicator.load()
        guard status.loaded else { return "NCCL not loaded: \(status.problem ?? "libnccl.so.2 not found")" }
        let sharing = ranksSharing(keys: keys, rank: comm.rank)
        if !sharing.isEmpty {
            return "shares \(cuda.deviceDescription) on host \(comm.processorName) with rank(s) "
                + sharing.map(String.init).joined(separator: ", ") + "; NCCL needs one GPU per rank"
        }
        return nil
    }

    /// The other ranks whose GPU key equals `rank`'s (keys of ranks without a GPU are 0 and share nothing).
    static func ranksSharing(keys: [Double], rank: Int) -> [Int] {
        guard keys[rank] != 0 else { return [] }
        return keys.indices.filter { $0 != rank && keys[$0] == keys[rank] }
    }

    /// A 52-bit key of (host, PCI address): exact in a Double, so ranks can exchange it with an allreduce.
    static func gpuKey(host: String, pci: String) -> Double {
        let h = "\(host)/\(pci)".utf8.reduce(SplitMix64.golden) { mix64($0 ^ UInt64($1)) }
        return Double(h >> 12) + 1
    }
}
